"""pytest fixtures for every service's tests (loaded with `-p atelier_common.testing`).

- `postgres`: a real PostgreSQL server for the test session (its own data folder and port,
  apart from `make up`'s), stopped at the end if the session started it.
- `database_factory(service)`: a fresh database with the service's schema, copied from a
  template database built once per session (a copy takes milliseconds, a schema seconds).
  Its URL is the runtime role's (DML only, as in production); `url.owner` is the owner's.
- `serve(service, database_url, **env)`: the service under real gunicorn + gevent on a free
  port, for what the Flask test client cannot show (concurrency, the pool, real sockets);
  `serve_module` keeps its servers for a whole test module.
- In a service's own tests (services/<name>/tests/): `service` (its name), `database_url` (a
  fresh database per test module), `app` (the service's Flask app on it) and `client` (its test
  client). A module overrides `app` for other settings; a service's conftest.py adds only what
  is its own (`db` helpers).
"""
import importlib
import itertools
from contextlib import contextmanager
from pathlib import Path
import os
import secrets
import socket
import subprocess
import sys
import urllib.request

import pytest

from atelier_common.localpg import DATA, LocalPostgres, wait_for
from atelier_common.roles import owner_role
from atelier_common.schema import apply_schema


@pytest.fixture(scope="session")
def postgres():
    pg = LocalPostgres(DATA / "pg-test", port=int(os.environ.get("ATELIER_TEST_PG_PORT", "54329")))
    started = pg.start()
    yield pg
    if started:
        pg.stop()


class DatabaseUrl(str):
    """The runtime role's URL (what a service connects with); `.owner` is the owner's URL, for
    what only the owner may do: loading, schema changes, triggers a test installs."""

    def __new__(cls, url: str, owner: str):
        value = super().__new__(cls, url)
        value.owner = owner
        return value


@pytest.fixture(scope="session")
def database_factory(postgres):
    password = secrets.token_urlsafe(16)
    templates = set()
    created = []
    numbers = itertools.count(1)

    def make(service: str) -> DatabaseUrl:
        """A fresh database with the service's schema, under the two roles of roles.py."""
        runtime, owner = f"{service}_test", owner_role(f"{service}_test")
        postgres.ensure_role(owner, password)
        postgres.ensure_role(runtime, password)
        template = f"{service}_template"
        if template not in templates:
            postgres.drop_database(template)
            postgres.ensure_database(template, owner)
            apply_schema(postgres.url(owner, password, template), service)
            postgres.separate_roles(template, owner, runtime)
            templates.add(template)
        name = f"{service}_test_{os.getpid()}_{next(numbers)}"
        postgres.drop_database(name)
        postgres.ensure_database(name, owner, template=template)
        postgres.separate_roles(name, owner, runtime)  # CONNECT is not copied from the template
        created.append(name)
        return DatabaseUrl(postgres.url(runtime, password, name), postgres.url(owner, password, name))

    yield make
    for name in created + sorted(templates):
        postgres.drop_database(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    """The URL answers 200 (within a second)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def _gunicorn_servers():
    """Start a service under gunicorn; every server started is stopped on exit."""
    processes = []

    def start(service: str, database_url: str, app: str = None, error_log=None, **env) -> str:
        """`app`: another WSGI app than the service's (a test's own module); `error_log`: a
        file for gunicorn's --error-logfile, as `make up` gives each instance."""
        port = free_port()
        environment = {**os.environ, f"{service.upper()}_DATABASE_URL": database_url,
                       "WEB_CONCURRENCY": "1", "PROC_NAME": f"atelier-{service}",
                       **{k: str(v) for k, v in env.items()}}
        log_args = ["--error-logfile", str(error_log)] if error_log else []
        process = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "gunicorn"),
             "-c", "python:atelier_common.gunicorn_conf", "--bind", f"127.0.0.1:{port}", *log_args,
             app or f"{service}:create_app()"],
            env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        processes.append(process)
        base = f"http://127.0.0.1:{port}"

        def healthy():
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {process.stderr.read().decode()[-2000:]}")
            return answers(base + "/healthz")

        wait_for(healthy, 20, f"{service} under gunicorn")
        return base

    start.processes = processes  # the gunicorn masters, for tests that watch their workers
    try:
        yield start
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def serve():
    """`serve(service, database_url, **env)` -> base URL; the servers stop after the test."""
    with _gunicorn_servers() as start:
        yield start


@pytest.fixture(scope="module")
def serve_module():
    """The same, the servers living as long as the test module."""
    with _gunicorn_servers() as start:
        yield start


@pytest.fixture(scope="module")
def service(request) -> str:
    """The service whose tests these are: `<name>` of services/<name>/tests/."""
    path = Path(request.path).resolve()
    for folder in path.parents:
        if folder.parent.name == "services":
            return folder.name
    raise pytest.UsageError(f"{path} is not in services/<name>/: define the `service` fixture")


@pytest.fixture(scope="module")
def database_url(database_factory, service):
    """A fresh database of the service for the test module (the runtime role's URL; `.owner`)."""
    return database_factory(service)


@pytest.fixture(scope="module")
def app(database_url, service):
    return importlib.import_module(service).create_app({"database_url": database_url})


@pytest.fixture
def client(app):
    return app.test_client()
