"""/healthz: the process answers. /readyz: it can also reach its database."""
from flask import Blueprint, Response

from .db import Statement, fetch_value

bp = Blueprint("health", __name__)
_PING = Statement("health_ping", "SELECT 1")


@bp.get("/healthz")
def healthz():
    return Response(b'{"status":"ok"}', mimetype="application/json")


@bp.get("/readyz")
def readyz():
    fetch_value(_PING)  # a database error becomes the 503 of errors.py
    return Response(b'{"status":"ready"}', mimetype="application/json")


def register_health(app):
    app.register_blueprint(bp)
