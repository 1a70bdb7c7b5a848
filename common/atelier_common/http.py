"""The contract's HTTP rules that do not belong to any one endpoint.

A WSGI middleware, so that they hold for every path, including 404s and errors, and cost no
Flask machinery: one trailing slash is ignored, repeated slashes are one (as nginx reads them;
never a redirect, whose absolute URL would come from the client's Host header), an OPTIONS
preflight is answered 204, and every response carries Access-Control-Allow-Origin."""
import ipaddress
import re

from flask import Response

from .logs import register_request_id

ALLOW_METHODS = "GET, POST, PUT, OPTIONS"
ALLOW_HEADERS = "Content-Type, Authorization, Idempotency-Key"


_SLASHES = re.compile(r"/{2,}")
# An HTTP method is a token (RFC 9110); a balancer never names anything else.
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


class ContractMiddleware:
    def __init__(self, wsgi_app, allow_origin: str):
        """allow_origin: `*` (any page may read the answers), or a comma-separated list of
        origins (`https://shop.example`): a listed Origin is echoed back (with Vary: Origin),
        any other gets no Access-Control-Allow-Origin, so a browser keeps the answer from it."""
        self.wsgi_app = wsgi_app
        origins = [item.strip() for item in allow_origin.split(",") if item.strip()]
        self.any_origin = "*" in origins or not origins
        self.origins = frozenset(origins)
        self.origin_header = ("Access-Control-Allow-Origin", "*")

    def cors_headers(self, environ) -> list:
        if self.any_origin:
            return [self.origin_header]
        origin = environ.get("HTTP_ORIGIN")
        vary = ("Vary", "Origin")
        return [("Access-Control-Allow-Origin", origin), vary] if origin in self.origins else [vary]

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if "//" in path:
            path = environ["PATH_INFO"] = _SLASHES.sub("/", path)
        if len(path) > 1 and path.endswith("/"):
            environ["PATH_INFO"] = path[:-1]
        if environ.get("REQUEST_METHOD") == "OPTIONS":
            start_response("204 No Content", [
                *self.cors_headers(environ),
                ("Access-Control-Allow-Methods", ALLOW_METHODS),
                ("Access-Control-Allow-Headers", ALLOW_HEADERS),
                ("Access-Control-Max-Age", "86400"),
            ])
            return [b""]

        cors = self.cors_headers(environ)

        def start_with_cors(status, headers, exc_info=None):
            headers.extend(cors)
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start_with_cors)


class TrustedBalancer:
    """What a trusted balancer (a peer in TRUSTED_PROXIES) tells an instance about the client,
    and only what it tells:
    - the client's address: REMOTE_ADDR becomes the client named in X-Forwarded-For, walking the
      list from the right, every trusted hop skipped; the peer stays in `atelier.peer`;
    - the client's method: a POST whose X-Original-Method is M is the client's M (the balancer
      sends every write as POST so that nginx never resends one that reached an instance:
      infra/nginx/conf/routes.conf)."""

    def __init__(self, wsgi_app, trusted: str):
        self.wsgi_app = wsgi_app
        self.networks = [ipaddress.ip_network(item.strip(), strict=False)
                         for item in trusted.split(",") if item.strip()]

    def trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR", "")
        environ["atelier.peer"] = peer
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        if forwarded and self.trusted(peer):
            for hop in reversed(forwarded.split(",")):
                hop = hop.strip()
                if hop and not self.trusted(hop):
                    environ["REMOTE_ADDR"] = hop
                    break
        # Any method the balancer turned into POST gets its own back (a DELETE or a `DELETE_` must
        # meet its 405, never a POST route); only a trusted balancer may say so. A value that is
        # no method name at all is not a POST either: it becomes one no route has (405).
        original = environ.get("HTTP_X_ORIGINAL_METHOD")
        if original and environ.get("REQUEST_METHOD") == "POST" and self.trusted(peer):
            environ["REQUEST_METHOD"] = original if _METHOD.match(original) else "INVALID"
        return self.wsgi_app(environ, start_response)


def register_contract_rules(app):
    settings = app.config["SETTINGS"]
    app.wsgi_app = TrustedBalancer(ContractMiddleware(app.wsgi_app, settings.cors_allow_origin),
                                    settings.trusted_proxies)
    register_request_id(app)  # outermost: even a preflight answer carries X-Request-Id


def json_bytes(body) -> Response:
    """A 200 whose JSON was already built (by PostgreSQL): passed through without parsing."""
    return Response(body, mimetype="application/json")


# A write names the cached views it changed, for the balancer in front (infra/nginx/README.md):
# `X-Invalidates: product:12 question:34`. The balancer bumps those keys' versions and removes
# the header, so clients never see it.
INVALIDATES = "X-Invalidates"


def changed(product_id=None, question_id=None) -> dict:
    """The X-Invalidates header for a write that changed what a product's or question's views show."""
    keys = [f"{kind}:{int(value)}" for kind, value in (("product", product_id), ("question", question_id))
            if value is not None]
    return {INVALIDATES: " ".join(keys)} if keys else {}


def created(location: str, invalidates: dict = None) -> Response:
    """201 with the plain-text body front-ends test for, and the new row in Location."""
    return Response("Created", status=201, mimetype="text/plain",
                    headers={"Location": location, **(invalidates or {})})


def no_content(invalidates: dict = None) -> Response:
    return Response(status=204, headers=invalidates)
