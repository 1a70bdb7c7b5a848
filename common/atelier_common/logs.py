"""Log lines a shipper can parse, and the request id that ties a response to its log lines.

- Every line is one JSON object: time (UTC, ms), level, logger, service, pid, message, and inside
  a request its request_id, method and path; `exc_info` carries the traceback when there is one.
- Under gunicorn, `GunicornLogger` (gunicorn_conf's logger_class) formats gunicorn's own lines
  the same way and sends the `atelier` logger to the same place (the --error-logfile `make up`
  gives each service, or stderr). Without it, the services' lines went to a stderr that
  `--daemon` points at /dev/null.
- `RequestIdMiddleware`: the id comes from the balancer's `X-Request-Id` when it sends a sane
  one, else it is generated; every response carries it back, and an exception that escapes
  Flask itself is still logged (with the id) and answered with the contract's JSON 500.
"""
import json
import logging
import os
import re
import sys
import time

from flask import current_app, has_request_context, request
from gunicorn import glogging

log = logging.getLogger("atelier")

REQUEST_ID_KEY = "atelier.request_id"
# What a balancer sends (nginx's $request_id is 32 hex digits) or a tracing header; anything
# else (too long, control characters, quotes) is replaced rather than written to the logs.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_INTERNAL_ERROR = b'{"message": "internal server error"}'


def request_id_from(environ) -> str:
    """The request's id: the one the balancer sent when it is sane, else a new random one."""
    given = environ.get("HTTP_X_REQUEST_ID")
    if given and _SANE_REQUEST_ID.fullmatch(given):
        return given
    return os.urandom(16).hex()


class RequestIdMiddleware:
    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        request_id = environ[REQUEST_ID_KEY] = request_id_from(environ)
        header = ("X-Request-Id", request_id)

        def start_with_id(status, headers, exc_info=None):
            headers.append(header)
            return start_response(status, headers, exc_info)

        try:
            return self.wsgi_app(environ, start_with_id)
        except Exception:
            # Flask answers every error itself; this is the net under the middlewares around it.
            log.exception("unhandled error outside the application on %s %s",
                          environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"),
                          extra={"request_id": request_id})
            start_response("500 Internal Server Error",
                           [("Content-Type", "application/json"), header], sys.exc_info())
            return [_INTERNAL_ERROR]


def register_request_id(app):
    """Wraps whatever wraps the app at the time: call it after every other middleware."""
    app.wsgi_app = RequestIdMiddleware(app.wsgi_app)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; never raises (a log line must not cost a request)."""

    def __init__(self, service: str = None):
        super().__init__()
        self.service = service or os.environ.get("ATELIER_SERVICE")

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "service": current_app.config["SETTINGS"].service if has_request_context() else self.service,
            "pid": record.process,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if has_request_context():
            line["request_id"] = request_id or request.environ.get(REQUEST_ID_KEY)
            line["method"] = request.method
            line["path"] = request.path
        elif request_id:
            line["request_id"] = request_id
        if record.exc_info:
            line["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_plain_logging():
    """Outside gunicorn (flask run, the test client): JSON lines on stderr, once."""
    if log.handlers:  # GunicornLogger (or an earlier call) configured it
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)


class GunicornLogger(glogging.Logger):
    """gunicorn's logger with JSON lines, whose handlers the `atelier` logger shares."""

    def setup(self, cfg):
        super().setup(cfg)
        # PROC_NAME is atelier-<service>, or atelier-<service>-<port> for an instance of `make up`.
        formatter = JsonFormatter(service=cfg.proc_name.removeprefix("atelier-").split("-", 1)[0])
        for handler in self.error_log.handlers:
            handler.setFormatter(formatter)
        for handler in list(log.handlers):
            log.removeHandler(handler)
        for handler in self.error_log.handlers:
            log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
