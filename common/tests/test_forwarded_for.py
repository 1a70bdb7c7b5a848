"""X-Forwarded-For names the client only when the peer is a trusted proxy (TRUSTED_PROXIES)."""
import pytest

from atelier_common.config import load_settings
from atelier_common.http import TrustedBalancer


def client_address(trusted: str, peer: str, forwarded=None) -> str:
    seen = {}

    def app(environ, start_response):
        seen["client"], seen["peer"] = environ["REMOTE_ADDR"], environ["atelier.peer"]
        return []

    environ = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded
    TrustedBalancer(app, trusted)(environ, lambda *args: None)
    assert seen["peer"] == peer
    return seen["client"]


@pytest.mark.parametrize("trusted,peer,forwarded,client", [
    ("127.0.0.1", "127.0.0.1", "203.0.113.9", "203.0.113.9"),            # through the balancer
    ("127.0.0.1", "198.51.100.7", "203.0.113.9", "198.51.100.7"),       # straight, forged: ignored
    ("127.0.0.1", "127.0.0.1", None, "127.0.0.1"),                      # the balancer's own request
    ("10.0.0.0/16", "10.0.3.4", "1.2.3.4, 203.0.113.9, 10.0.1.1", "203.0.113.9"),  # ALB then nginx
    ("127.0.0.1", "127.0.0.1", "forged, 203.0.113.9", "203.0.113.9"),   # only the hops we trust
    ("127.0.0.1,::1", "::1", "2001:db8::1", "2001:db8::1"),
])
def test_forwarded_for_trusted_only_from_trusted_proxies(trusted, peer, forwarded, client):
    assert client_address(trusted, peer, forwarded) == client


def test_trusted_proxies_setting_defaults_to_the_local_balancer():
    settings = load_settings("qa", environ={"QA_DATABASE_URL": "postgresql://x/qa"})
    assert settings.trusted_proxies == "127.0.0.1"
    settings = load_settings("qa", environ={"QA_DATABASE_URL": "postgresql://x/qa", "TRUSTED_PROXIES": "10.0.0.0/16"})
    assert settings.trusted_proxies == "10.0.0.0/16"


@pytest.mark.parametrize("peer,method,original,seen", [
    ("127.0.0.1", "POST", "PUT", "PUT"),      # a client's PUT, sent as POST by the balancer
    ("127.0.0.1", "POST", "POST", "POST"),
    ("198.51.100.7", "POST", "PUT", "POST"),  # straight from a client: ignored
    ("127.0.0.1", "GET", "PUT", "GET"),       # only a POST can have been a PUT
    ("127.0.0.1", "POST", "DELETE", "DELETE"),  # meets its 405, never a POST route
    ("127.0.0.1", "POST", "PATCH", "PATCH"),
    ("127.0.0.1", "POST", "DELETE_", "DELETE_"),  # any method token: its 405, never the POST view
    ("127.0.0.1", "POST", "put x", "INVALID"),  # not a method name: no route has it either
])
def test_a_write_sent_as_post_by_a_trusted_balancer_keeps_its_method(peer, method, original, seen):
    methods = []

    def app(environ, start_response):
        methods.append(environ["REQUEST_METHOD"])
        return []

    environ = {"REMOTE_ADDR": peer, "REQUEST_METHOD": method, "HTTP_X_ORIGINAL_METHOD": original}
    TrustedBalancer(app, "127.0.0.1")(environ, lambda *args: None)
    assert methods == [seen]


@pytest.mark.parametrize("allowed,origin,expected", [
    ("*", "https://evil.example", "*"),
    ("https://shop.example", "https://shop.example", "https://shop.example"),
    ("https://shop.example, https://www.shop.example", "https://www.shop.example", "https://www.shop.example"),
    ("https://shop.example", "https://evil.example", None),   # a page elsewhere cannot read the answer
    ("https://shop.example", None, None),                     # a server-to-server call needs none
])
def test_cors_origins_are_configurable(allowed, origin, expected):
    from atelier_common.http import ContractMiddleware

    for method in ("GET", "OPTIONS"):
        seen = {}

        def start_response(status, headers, exc_info=None):
            seen.update(headers)

        environ = {"REQUEST_METHOD": method, "PATH_INFO": "/x"}
        if origin:
            environ["HTTP_ORIGIN"] = origin
        ContractMiddleware(lambda env, start: start("200 OK", []) or [], allowed)(environ, start_response)
        assert seen.get("Access-Control-Allow-Origin") == expected
        assert (seen.get("Vary") == "Origin") == (allowed != "*")
