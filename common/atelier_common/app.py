"""The first step of every service's application factory: settings and logging."""
from .config import load_settings
from .logs import configure_plain_logging


def register_settings(app, service: str, test_config=None):
    """Read the service's settings from the environment (test_config overrides them).

    Fails at boot, not at the first request, when a required setting is missing."""
    app.config["SETTINGS"] = load_settings(service, overrides=test_config)
    app.config["JSON_SORT_KEYS"] = False
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.config["MAX_CONTENT_LENGTH"] = app.config["SETTINGS"].max_body_bytes  # larger: 413
    configure_plain_logging()  # under gunicorn, GunicornLogger has done it already
