"""The shared plumbing, exercised through a real service (products) on a real database."""
import pytest

from atelier_common.db import get_pool
from products import create_app


@pytest.fixture(scope="module")
def database_url(database_factory):
    return database_factory("products")


@pytest.fixture(scope="module")
def app(database_url):
    return create_app({"database_url": database_url, "pool_max": 1, "pool_wait_seconds": 0.3})


@pytest.fixture
def client(app):
    return app.test_client()


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 200 and response.get_json() == {"status": "ready"}


def test_trailing_slash_and_extra_parameters_are_tolerated(client):
    assert client.get("/readyz/?question_id=3", headers={"Authorization": "Bearer x"}).status_code == 200


def test_preflight_and_cors_headers(client):
    preflight = client.options("/products", headers={"Origin": "https://shop.example",
                                                      "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert set(preflight.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST", "PUT", "OPTIONS"}
    assert set(preflight.headers["Access-Control-Allow-Headers"].split(", ")) == {"Content-Type", "Authorization", "Idempotency-Key"}
    assert client.get("/healthz").headers["Access-Control-Allow-Origin"] == "*"


def test_unknown_paths_answer_json_404_with_cors(client):
    response = client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.get_json() == {"message": "not found"}
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_a_wrong_method_answers_405_naming_the_allowed_ones(client):
    response = client.delete("/products")
    assert response.status_code == 405
    assert response.get_json() == {"message": "method not allowed"}
    assert set(response.headers["Allow"].split(", ")) >= {"GET"}


def test_pool_answers_503_with_retry_after_when_every_connection_stays_busy(app, client):
    with app.app_context():
        with get_pool().connection():  # the pool's only connection is now busy
            response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.get_json() == {"message": "service temporarily unavailable, retry later"}
    assert client.get("/readyz").status_code == 200  # and it recovers once the connection is back


def test_database_down_answers_503_without_leaking_details():
    app = create_app({"database_url": "postgresql://nobody:secret@127.0.0.1:1/none"})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and "Retry-After" in response.headers
    body = response.get_data(as_text=True)
    assert "127.0.0.1" not in body and "secret" not in body and "Traceback" not in body


def test_unexpected_errors_answer_500_without_details(database_url):
    app = create_app({"database_url": database_url})

    @app.get("/explode")
    def explode():
        raise RuntimeError("SELECT secret FROM internals")

    response = app.test_client().get("/explode")
    assert response.status_code == 500
    assert response.get_json() == {"message": "internal server error"}


def test_each_service_answers_under_gunicorn(serve, database_factory):
    import urllib.request

    for service in ("products", "qa", "reviews"):
        base = serve(service, database_factory(service))
        with urllib.request.urlopen(base + "/readyz", timeout=5) as response:
            assert response.status == 200


def test_each_service_role_reaches_only_its_own_database(postgres):
    import psycopg2

    postgres.ensure_service_database("products", "pw-products", "pw-products-owner")
    postgres.ensure_service_database("qa", "pw-qa", "pw-qa-owner")
    psycopg2.connect(postgres.url("products", "pw-products", "products")).close()
    with pytest.raises(psycopg2.OperationalError, match="CONNECT privilege"):
        psycopg2.connect(postgres.url("products", "pw-products", "qa"))


def test_workers_restart_after_max_requests(serve, database_url):
    """gunicorn's max_requests also holds for the pywsgi worker (which does not count by itself)."""
    import time
    import urllib.request

    import psutil

    base = serve("products", database_url, MAX_REQUESTS=20, MAX_REQUESTS_JITTER=0)
    master = psutil.Process(serve.processes[-1].pid)
    first = {child.pid for child in master.children()}
    for _ in range(25):
        with urllib.request.urlopen(base + "/healthz", timeout=5):
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        workers = {child.pid for child in master.children()}
        if workers and not workers & first:
            break
        time.sleep(0.1)
    assert workers and not workers & first, "the worker was not replaced after max_requests"
    with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
        assert response.status == 200
