"""Fixtures of the cross-service reliability tests (logging, privileges, faults, hostile input)."""
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from atelier_common.localpg import wait_for

GUNICORN = str(Path(sys.executable).parent / "gunicorn")


def table_state(database_url: str) -> dict:
    """Row count of every table and where every sequence stands: equal states mean nothing was
    written (a rolled-back insert still moves a sequence)."""
    with closing(psycopg2.connect(database_url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT schemaname, tablename FROM pg_tables "
                    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
        state = {}
        for schema, table in sorted(cur.fetchall()):
            cur.execute(f'SELECT count(*) FROM "{schema}"."{table}"')
            state[f"{schema}.{table}"] = cur.fetchone()[0]
        cur.execute("SELECT schemaname, sequencename, last_value FROM pg_sequences")
        for schema, sequence, last_value in sorted(cur.fetchall()):
            state[f"{schema}.{sequence} (sequence)"] = last_value
    return state


@pytest.fixture(scope="session")
def state():
    """table_state, for the test modules (import mode `importlib` cannot import conftest)."""
    return table_state


@pytest.fixture(scope="module")
def databases(database_factory):
    """A fresh database per service for the module: {service: url}."""
    return {service: database_factory(service) for service in ("products", "qa", "reviews")}


@pytest.fixture
def gunicorn(tmp_path):
    """Start a service the way `make up` does (its error log in a file); stopped after the test.

    Returns (base_url, process, log_path)."""
    from atelier_common.testing import free_port
    import urllib.request

    processes = []

    def start(service: str, database_url: str, app: str = None, **env):
        port = free_port()
        log_path = tmp_path / f"{service}-{port}.log"
        environment = dict(os.environ, **{f"{service.upper()}_DATABASE_URL": database_url,
                                          "WEB_CONCURRENCY": "1", "PROC_NAME": f"atelier-{service}"},
                           **{k: str(v) for k, v in env.items()})
        process = subprocess.Popen(
            [GUNICORN, "-c", "python:atelier_common.gunicorn_conf", "--bind", f"127.0.0.1:{port}",
             "--error-logfile", str(log_path), app or f"{service}:create_app()"],
            env=environment, cwd=str(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        processes.append(process)
        base = f"http://127.0.0.1:{port}"

        def healthy():
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {process.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=1):
                    return True
            except OSError:
                return False

        wait_for(healthy, 20, f"{service} under gunicorn")
        return base, process, log_path

    yield start
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
