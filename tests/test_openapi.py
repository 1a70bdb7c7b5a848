"""The OpenAPI descriptions (services/<svc>/<svc>/openapi.json) stay true both ways.

- Each is a valid OpenAPI 3.1 document, served as is at /openapi.json.
- Every Flask route of each app is documented, and nothing else is (compared with app.url_map).
- Every documented response carries the request that produces it (`x-request`); each is sent to
  the service under gunicorn on a test database holding the sample data (`make up`'s, scale 0.01
  seed 1), and the status, headers and body must be the documented ones (bodies validated with
  jsonschema against the response schema). The 503s are asked of the same service with an
  unreachable database. Only the 500s are not produced (no request should cause one).
- Query parameters with a default answer as if the default had been sent; every value of an enum
  (the sort aliases) is accepted; examples validate against their schemas.
"""
import importlib
import subprocess
import sys
from contextlib import closing
from urllib.parse import parse_qsl, urlencode

import jsonschema
import psycopg2
import pytest
import requests
from openapi_spec_validator import validate as validate_openapi

from atelier_common.localpg import SERVICES
from atelier_common.openapi import documented_requests, load_document

UNREACHABLE_DATABASE = "postgresql://nobody:none@127.0.0.1:9/none"
IGNORED_METHODS = {"HEAD", "OPTIONS"}  # answered for every path by Flask / the CORS middleware
# The parts every service shares: one copy per document (a document must stand alone), kept equal.
SHARED_COMPONENTS = {
    "schemas": ["Message", "InvalidInput", "UnreadableBody", "Health", "Ready", "OpenAPIDocument", "Id",
                "IdInput", "IdText", "Email", "PhotoUrls", "Date", "Count", "Photo"],
    "parameters": ["page", "count"],
    "headers": ["AccessControlAllowOrigin", "RetryAfter"],
}
OPERATIONS_PATHS = ["/healthz", "/readyz", "/openapi.json", "/metrics"]


@pytest.fixture(scope="module", params=SERVICES)
def service(request):
    return request.param


@pytest.fixture(scope="module")
def document(service):
    return load_document(service)


def test_each_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1.")
    validate_openapi(document)


def test_text_shapes_are_the_servers_own(document):
    """The e-mail and URL patterns are the ones the server validates with (atelier_common)."""
    from atelier_common.validation import _BLANK, Email

    schemas = document["components"]["schemas"]
    assert schemas["Email"]["pattern"] == f"^{Email.SHAPE.pattern}$"
    assert schemas["PhotoUrls"]["items"]["pattern"] == f"^[hH][tT][tT][pP][sS]?://[^{_BLANK}]+$"


def test_shared_parts_are_the_same_in_every_document():
    documents = {service: load_document(service) for service in SERVICES}
    first, *others = SERVICES
    for service in others:
        for kind, names in SHARED_COMPONENTS.items():
            for name in names:
                assert documents[service]["components"][kind][name] == documents[first]["components"][kind][name], \
                    f"components/{kind}/{name} differs between {first} and {service}"
        for path in OPERATIONS_PATHS:
            assert documents[service]["paths"][path]["get"]["responses"] == \
                documents[first]["paths"][path]["get"]["responses"], f"{path} differs between {first} and {service}"


def _route_key(path: str) -> str:
    """`/products/<raw_id>` and `/products/{product_id}` both become `/products/{}`."""
    parts = []
    for part in path.split("/"):
        parts.append("{}" if part[:1] in "<{" and part[-1:] in ">}" else part)
    return "/".join(parts)


def test_every_route_is_documented_and_nothing_else(service, document):
    app = importlib.import_module(service).create_app({"database_url": UNREACHABLE_DATABASE})
    routes = {(method, _route_key(rule.rule)) for rule in app.url_map.iter_rules()
              for method in rule.methods - IGNORED_METHODS}
    documented = {(method.upper(), _route_key(path)) for path, item in document["paths"].items()
                  for method in item}
    assert routes - documented == set(), "routes missing from openapi.json"
    assert documented - routes == set(), "openapi.json documents routes the app does not have"


def test_operational_routes_are_tagged_operations(document):
    for path in OPERATIONS_PATHS:
        assert document["paths"][path]["get"]["tags"] == ["operations"]
    for path, item in document["paths"].items():
        for operation in item.values():
            assert ("operations" in operation["tags"]) == (path in OPERATIONS_PATHS), path


def test_every_documented_status_has_a_request_that_produces_it(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status not in ("500", "503"):  # 503: asked with a dead database below
                    assert "x-request" in response, f"{method.upper()} {path} {status} has no x-request"


def _validator(document, schema):
    """A JSON Schema 2020-12 validator for `schema`, its $refs resolved in the document."""
    return jsonschema.Draft202012Validator(dict(schema, components=document["components"]),
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_examples_match_their_schemas(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                _validator(document, body["schema"]).validate(body["example"])
            for status, response in operation["responses"].items():
                for media in response.get("content", {}).values():
                    if "example" in media:
                        _validator(document, media["schema"]).validate(media["example"])
                    elif status not in ("500",) and path != "/openapi.json":
                        pytest.fail(f"{method.upper()} {path} {status}: no example "
                                    "(run tools/openapi_examples.py against a `make up` stack)")


# -- against real servers ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def sample_data(tmp_path_factory):
    """The sample data `make up` loads (scale 0.01, seed 1): the examples' ids exist in it."""
    folder = tmp_path_factory.mktemp("openapi-sample")
    subprocess.run([sys.executable, "-m", "atelier_etl.generate", "--scale", "0.01", "--seed", "1",
                    "--out", str(folder)], check=True, capture_output=True)
    return folder


@pytest.fixture(scope="module")
def live(service, database_factory, sample_data, serve_module):
    url = database_factory(service)
    loader = importlib.import_module(f"{service}.loader")
    with closing(psycopg2.connect(url.owner)) as conn:  # loading is the owner's job
        loader.load(conn, sample_data, sample_data / "rejects" / service)
        conn.commit()
    return serve_module(service, url, MAX_PAGE_COUNT=1000)


@pytest.fixture(scope="module")
def dead(service, serve_module):
    return serve_module(service, UNREACHABLE_DATABASE)


def _send(base, request, url=None):
    return requests.request(request["method"], base + (url or request["url"]), data=request["body"],
                            headers=request["headers"], timeout=30)


def _check_answer(document, request, answer, status):
    where = f"{request['method']} {request['url']}"
    assert answer.status_code == status, f"{where}: {answer.status_code} {answer.text[:300]}"
    response = request["response"] if status == request["status"] else \
        document["paths"][request["path"]][request["method"].lower()]["responses"][str(status)]
    for name, header in response.get("headers", {}).items():
        if "$ref" in header:
            header = document["components"]["headers"][header["$ref"].rsplit("/", 1)[-1]]
        if header.get("required"):
            assert name in answer.headers, f"{where}: no {name} header"
            _validator(document, header["schema"]).validate(answer.headers[name])
    content = response.get("content")
    if not content:
        assert answer.content == b"", f"{where}: a body where none is documented"
        return
    (media_type, media), = content.items()
    assert answer.headers["Content-Type"].split(";")[0] == media_type, where
    body = answer.json() if media_type == "application/json" else answer.text
    try:
        _validator(document, media["schema"]).validate(body)
    except jsonschema.ValidationError as error:
        pytest.fail(f"{where}: the body does not match the documented schema: {error.message}")


def test_every_documented_request_answers_as_documented(document, live):
    for request in documented_requests(document):
        _check_answer(document, request, _send(live, request), request["status"])


def test_without_a_database_every_operation_answers_503_as_documented(document, dead):
    """The 2xx request of every operation, asked of the service with an unreachable database:
    503 where documented, the documented success where the operation needs no database."""
    for request in documented_requests(document):
        if request["status"] >= 300:
            continue
        responses = document["paths"][request["path"]][request["method"].lower()]["responses"]
        status = 503 if "503" in responses else request["status"]
        _check_answer(document, request, _send(dead, request), status)


def test_served_document_is_the_packaged_file(service, document, live):
    assert requests.get(live + "/openapi.json", timeout=10).json() == document


def test_defaults_and_enums_answer_as_documented(document, live):
    """A query parameter left out acts as its documented default (where the body echoes it), and
    every value of an enum (the sort aliases) is accepted."""
    for request in documented_requests(document):
        if request["status"] != 200 or "?" not in request["url"]:
            continue
        operation = document["paths"][request["path"]][request["method"].lower()]
        path, query = request["url"].split("?", 1)
        sent = dict(parse_qsl(query))
        for parameter in operation.get("parameters", []):
            if "$ref" in parameter:
                parameter = document["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[-1]]
            schema, name = parameter["schema"], parameter["name"]
            if "default" in schema and name in sent:
                url = path + "?" + urlencode({k: v for k, v in sent.items() if k != name})
                answer = _send(live, request, url)
                _check_answer(document, request, answer, 200)
                body = answer.json()
                if isinstance(body, dict) and name in body:
                    assert str(body[name]) == schema["default"], f"{url}: {name} is not its default"
            for value in schema.get("enum", []):
                url = path + "?" + urlencode({**sent, name: value})
                _check_answer(document, request, _send(live, request, url), 200)


def test_count_above_the_maximum_is_clamped_and_echoed(live, service):
    if service != "qa":
        pytest.skip("one service is enough: the clamp is shared plumbing")
    body = requests.get(live + "/qa/questions/28/answers?count=999999999", timeout=10).json()
    assert body["count"] == 1000
