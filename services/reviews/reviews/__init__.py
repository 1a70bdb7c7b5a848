"""The Ratings & Reviews service: its application factory."""
from flask import Flask

from atelier_common.app import register_settings
from atelier_common.db import register_db
from atelier_common.errors import register_error_handlers
from atelier_common.health import register_health
from atelier_common.http import register_contract_rules
from atelier_common.metrics import register_metrics
from atelier_common.openapi import register_openapi
from atelier_common.schema import register_cli

from . import routes


def create_app(test_config=None):
    app = Flask(__name__, static_folder=None)  # no static files: no /static route
    register_settings(app, "reviews", test_config)
    register_db(app)
    register_error_handlers(app)
    register_health(app)
    register_openapi(app, __name__)
    register_cli(app, __name__)
    app.register_blueprint(routes.bp)
    register_contract_rules(app)
    register_metrics(app)
    return app
