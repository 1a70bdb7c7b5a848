"""The contract's HTTP rules that do not belong to any one endpoint.

A WSGI middleware, so that they hold for every path, including 404s and errors, and cost no
Flask machinery: one trailing slash is ignored, an OPTIONS preflight is answered 204, and every
response carries Access-Control-Allow-Origin."""
from flask import Response

from .logs import register_request_id

ALLOW_METHODS = "GET, POST, PUT, OPTIONS"
ALLOW_HEADERS = "Content-Type, Authorization"


class ContractMiddleware:
    def __init__(self, wsgi_app, allow_origin: str):
        self.wsgi_app = wsgi_app
        self.origin_header = ("Access-Control-Allow-Origin", allow_origin)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if len(path) > 1 and path.endswith("/"):
            environ["PATH_INFO"] = path[:-1]
        if environ.get("REQUEST_METHOD") == "OPTIONS":
            start_response("204 No Content", [
                self.origin_header,
                ("Access-Control-Allow-Methods", ALLOW_METHODS),
                ("Access-Control-Allow-Headers", ALLOW_HEADERS),
                ("Access-Control-Max-Age", "86400"),
            ])
            return [b""]

        def start_with_cors(status, headers, exc_info=None):
            headers.append(self.origin_header)
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start_with_cors)


def register_contract_rules(app):
    app.wsgi_app = ContractMiddleware(app.wsgi_app, app.config["SETTINGS"].cors_allow_origin)
    register_request_id(app)  # outermost: even a preflight answer carries X-Request-Id


def json_bytes(body) -> Response:
    """A 200 whose JSON was already built (by PostgreSQL): passed through without parsing."""
    return Response(body, mimetype="application/json")


def created(location: str) -> Response:
    """201 with the plain-text body front-ends test for, and the new row in Location."""
    return Response("Created", status=201, mimetype="text/plain", headers={"Location": location})


def no_content() -> Response:
    return Response(status=204)
