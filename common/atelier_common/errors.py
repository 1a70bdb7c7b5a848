"""The contract's JSON errors: 422 bad input, 400 unreadable body, 404 unknown, 503 database
unavailable (with Retry-After), 500 anything else. No SQL text or traceback ever reaches a client;
every 5xx is logged with its traceback (logs.py adds the request id the response carries)."""
import json
import logging

import psycopg2
import psycopg2.errors
from flask import Response, current_app, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from .db import PoolTimeout
from .metrics import TALLY

log = logging.getLogger("atelier")


class APIError(Exception):
    def __init__(self, status: int, message: str, errors=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def not_found(what: str) -> APIError:
    return APIError(404, f"{what} not found")


def bad_request(problem: str) -> APIError:
    return APIError(400, "The request body could not be read.", {"request": [problem]})


def invalid(field: str, problem: str) -> APIError:
    return APIError(422, "The request has invalid parameters.", {field: [problem]})


def error_response(status: int, message: str, errors=None, headers=None) -> Response:
    body = {"message": message}
    if errors is not None:
        body["errors"] = errors
    return Response(json.dumps(body), status=status, mimetype="application/json", headers=headers)


def flatten_messages(messages) -> dict:
    """marshmallow nests errors for dicts and lists; the contract wants {field: [str, …]}."""
    flat = {}
    for field, problems in messages.items():
        flat[field] = list(_strings(problems))
    return flat


def _strings(problems, prefix=""):
    if isinstance(problems, str):
        yield prefix + problems
    elif isinstance(problems, dict):
        for key, inner in problems.items():
            yield from _strings(inner, f"{prefix}{key}: ")
    else:
        for inner in problems:
            yield from _strings(inner, prefix)


def register_error_handlers(app):
    @app.errorhandler(APIError)
    def api_error(error):
        return error_response(error.status, error.message, error.errors)

    @app.errorhandler(ValidationError)
    def validation_error(error):
        return error_response(422, "The request has invalid parameters.",
                              flatten_messages(error.normalized_messages()))

    @app.errorhandler(PoolTimeout)
    def pool_timeout(error):
        log.warning("no free database connection within the wait: %s %s", request.method, request.path,
                    exc_info=error)
        return _unavailable()

    @app.errorhandler(psycopg2.errors.ReadOnlySqlTransaction)
    def database_read_only(error):
        # A failover in progress, a replica promoted late, a disk nearly full made read-only:
        # reads still work, writes are refused until the database takes them again.
        log.error("write refused, the database is read-only", exc_info=error)
        return _unavailable("the database accepts no writes at the moment, retry later")

    @app.errorhandler(psycopg2.OperationalError)
    def database_unavailable(error):
        TALLY.database_error(error.__class__.__name__)
        log.error("database unavailable: %s", error.__class__.__name__, exc_info=error)
        return _unavailable()

    @app.errorhandler(HTTPException)
    def http_error(error):
        message = {404: "not found", 405: "method not allowed"}.get(error.code, error.name.lower())
        if error.code >= 500:
            log.error("%s on %s %s", error.code, request.method, request.path, exc_info=error)
        # A 405 says which methods the path has (HTTP requires it; API fuzzers check it).
        allow = [(k, v) for k, v in error.get_headers() if k == "Allow"]
        return error_response(error.code, message, headers=allow or None)

    @app.errorhandler(Exception)
    def unexpected(error):
        if isinstance(error, psycopg2.Error):
            TALLY.database_error(error.__class__.__name__)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal server error")


def _unavailable(message="service temporarily unavailable, retry later"):
    retry_after = current_app.config["SETTINGS"].retry_after_seconds
    return error_response(503, message,
                          headers={"Retry-After": str(retry_after)})
