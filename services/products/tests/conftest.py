import pytest

from products import create_app


@pytest.fixture(scope="module")
def database_url(database_factory):
    return database_factory("products")


@pytest.fixture(scope="module")
def app(database_url):
    return create_app({"database_url": database_url})


@pytest.fixture
def client(app):
    return app.test_client()
