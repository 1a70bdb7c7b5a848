"""Request ids, JSON log lines (gunicorn's and the services' own, in the file `make up` uses),
every 5xx logged with its traceback, and bodies nested too deeply for the JSON parser."""
import json
import re
import textwrap
import time

import pytest
import requests

from qa import create_app as create_qa
from reviews import create_app as create_reviews

HEX_ID = re.compile(r"[0-9a-f]{32}")


def log_lines(path) -> list:
    """Every line of the log file, parsed: a line that is not one JSON object fails the test."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_line(path, predicate, seconds=5.0):
    deadline = time.monotonic() + seconds
    while True:
        found = [line for line in log_lines(path) if predicate(line)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.fixture(scope="module")
def qa_app(databases):
    return create_qa({"database_url": databases["qa"]})


def test_every_response_carries_a_request_id(qa_app):
    client = qa_app.test_client()
    generated = {client.get("/healthz").headers["X-Request-Id"] for _ in range(3)}
    assert len(generated) == 3 and all(HEX_ID.fullmatch(value) for value in generated)
    for response in (client.get("/no/such/path"), client.options("/qa/questions"),
                     client.get("/qa/questions?product_id=abc")):
        assert HEX_ID.fullmatch(response.headers["X-Request-Id"]), response.status_code


def test_the_balancers_request_id_is_kept_and_a_hostile_one_replaced(qa_app):
    client = qa_app.test_client()
    sent = "4f1c2a9be0d14b7e8c6a5d3f2e1b0a99"
    assert client.get("/healthz", headers={"X-Request-Id": sent}).headers["X-Request-Id"] == sent
    for hostile in ("x" * 129, 'a"b', "a b", "id\u00e9"):
        answered = client.get("/healthz", headers={"X-Request-Id": hostile}).headers["X-Request-Id"]
        assert HEX_ID.fullmatch(answered), hostile


def deeply_nested(depth: int, field: str = None) -> str:
    inner = "[" * depth + "]" * depth
    return '{"%s": %s}' % (field, inner) if field else inner


@pytest.mark.parametrize("path,service", [
    ("/qa/questions", "qa"), ("/qa/questions/1/answers", "qa"), ("/reviews", "reviews")])
@pytest.mark.parametrize("body", [
    "[" * 5000 + "]" * 5000,
    '{"a":' * 5000 + "1" + "}" * 5000,
    '{"body": ' + "[" * 5000 + "]" * 5000 + "}",
])
def test_json_nested_5000_levels_deep_is_the_contracts_400_and_writes_nothing(
        databases, state, path, service, body):
    app = {"qa": create_qa, "reviews": create_reviews}[service]({"database_url": databases[service]})
    before = state(databases[service])
    response = app.test_client().post(path, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json() == {"message": "The request body could not be read.",
                                   "errors": {"request": ["The body is nested too deeply."]}}
    assert state(databases[service]) == before


def test_nesting_the_parser_accepts_is_validated_like_any_wrong_field(databases):
    client = create_reviews({"database_url": databases["reviews"]}).test_client()
    body = '{"product_id": 1, "photos": %s, "characteristics": {"1": %s}}' % (
        "[" * 500 + "]" * 500, "[" * 500 + "]" * 500)
    response = client.post("/reviews", data=body, content_type="application/json")
    assert response.status_code == 422
    assert {"photos", "characteristics"} <= set(response.get_json()["errors"])


def test_a_body_above_the_limit_answers_413_in_json(databases, state):
    client = create_qa({"database_url": databases["qa"]}).test_client()
    before = state(databases["qa"])
    body = json.dumps({"body": "x" * 70_000, "name": "n", "email": "n@example.com", "product_id": 1})
    response = client.post("/qa/questions", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json() == {"message": "request entity too large"}
    assert state(databases["qa"]) == before


EXPLODING_APP = textwrap.dedent('''
    from products import create_app

    def make():
        app = create_app()

        @app.get("/explode")
        def explode():
            raise RuntimeError("SELECT secret FROM internals")

        return app
''')


def test_under_gunicorn_a_500_is_one_json_line_with_traceback_and_the_responses_request_id(
        serve, databases, tmp_path):
    (tmp_path / "exploding.py").write_text(EXPLODING_APP)
    log_path = tmp_path / "products.log"
    base = serve("products", databases["products"], app="exploding:make()", error_log=log_path,
                 PYTHONPATH=tmp_path)
    response = requests.get(base + "/explode", headers={"X-Request-Id": "balancer-id-1"}, timeout=5)
    assert response.status_code == 500
    assert response.json() == {"message": "internal server error"}
    assert response.headers["X-Request-Id"] == "balancer-id-1"
    [line] = wait_for_line(log_path, lambda line: line.get("request_id") == "balancer-id-1")
    assert line["level"] == "ERROR" and line["logger"] == "atelier" and line["service"] == "products"
    assert line["method"] == "GET" and line["path"] == "/explode"
    assert line["exc_type"] == "RuntimeError"
    assert "Traceback" in line["exc_info"] and "SELECT secret FROM internals" in line["exc_info"]
    # gunicorn's own lines are in the same file, in the same format
    assert any(line["logger"] == "gunicorn.error" and "Booting worker" in line["message"]
               for line in log_lines(log_path))


def test_under_gunicorn_a_503_from_an_unreachable_database_is_logged_with_its_request_id(serve, tmp_path):
    log_path = tmp_path / "qa.log"
    base = serve("qa", "postgresql://nobody:secret@127.0.0.1:1/none", error_log=log_path)
    response = requests.get(base + "/qa/questions?product_id=1", timeout=5)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    request_id = response.headers["X-Request-Id"]
    assert HEX_ID.fullmatch(request_id)
    assert "secret" not in response.text and "127.0.0.1" not in response.text
    [line] = wait_for_line(log_path, lambda line: line.get("request_id") == request_id)
    assert line["level"] == "ERROR" and line["path"] == "/qa/questions"
    assert line["exc_type"] == "OperationalError" and "Traceback" in line["exc_info"]
