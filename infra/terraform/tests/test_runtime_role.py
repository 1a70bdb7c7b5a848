"""runtime_role.py, the load and rotate tasks' role step, against a real PostgreSQL: run as an
owner that may create roles but is no superuser (as the RDS master user is), it gives the
runtime role its password and DML on the tables that exist and on those made later, nothing
more; run again with another password, it rotates."""
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "runtime_role.py"


@pytest.fixture
def rds_like(postgres):
    """A database owned by a CREATEROLE (not superuser) owner with one table, like a fresh RDS
    instance after the loader ran; dropped afterwards with both roles."""
    service = f"tfrole{os.getpid()}"
    owner, password = f"{service}_owner", "owner-secret"
    with closing(postgres.admin_connect()) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE ROLE "{owner}" LOGIN CREATEROLE NOSUPERUSER PASSWORD %s', (password,))
        cur.execute(f'CREATE DATABASE "{service}" OWNER "{owner}"')
    owner_url = postgres.url(owner, password, service)
    with closing(psycopg2.connect(owner_url)) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE loaded (id serial PRIMARY KEY, helpful int NOT NULL DEFAULT 0)")
        conn.commit()
    yield service, owner_url
    postgres.drop_database(service)
    with closing(postgres.admin_connect()) as conn, conn.cursor() as cur:
        cur.execute(f'DROP ROLE IF EXISTS "{service}"')
        cur.execute(f'DROP ROLE IF EXISTS "{owner}"')


def run_role_step(service, owner_url, password):
    env = dict(os.environ, **{f"{service.upper()}_OWNER_DATABASE_URL": owner_url, "RUNTIME_PASSWORD": password})
    return subprocess.run([sys.executable, str(SCRIPT), service], env=env, capture_output=True, text=True)


def test_runtime_role_gets_dml_only_and_its_password_rotates(postgres, rds_like):
    service, owner_url = rds_like
    first = run_role_step(service, owner_url, "first-password")
    assert first.returncode == 0, first.stderr
    runtime_url = postgres.url(service, "first-password", service)
    with closing(psycopg2.connect(runtime_url)) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO loaded DEFAULT VALUES RETURNING id")
        cur.execute("UPDATE loaded SET helpful = helpful + 1 WHERE id = 1 RETURNING helpful")
        assert cur.fetchone() == (1,)
        conn.commit()
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("CREATE TABLE mine (id int)")
        conn.rollback()
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("TRUNCATE loaded")
    # A table the owner makes later (a reload) is usable at once: default privileges.
    with closing(psycopg2.connect(owner_url)) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE reloaded (id int)")
        conn.commit()
    with closing(psycopg2.connect(runtime_url)) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO reloaded VALUES (1)")
        conn.commit()

    second = run_role_step(service, owner_url, "second-password")
    assert second.returncode == 0, second.stderr
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(runtime_url).close()
    with closing(psycopg2.connect(postgres.url(service, "second-password", service))) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM loaded")
        assert cur.fetchone() == (1,)


def test_without_its_settings_it_changes_nothing(rds_like):
    service, _ = rds_like
    result = subprocess.run([sys.executable, str(SCRIPT), service], capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if not k.endswith("_OWNER_DATABASE_URL")})
    assert result.returncode == 2 and "RUNTIME_PASSWORD" in result.stderr


def test_the_password_never_reaches_the_server_log(postgres, rds_like):
    """RDS logs DDL (log_statement = ddl) and exports the log: the statement that sets the
    password carries its SCRAM verifier, never the password."""
    service, owner_url = rds_like
    owner = f"{service}_owner"
    with closing(postgres.admin_connect()) as conn, conn.cursor() as cur:
        cur.execute(f'ALTER ROLE "{owner}" SET log_statement = \'all\'')
    start = postgres.logfile.stat().st_size
    password = f"clear-text-{os.getpid()}-never-logged"
    result = run_role_step(service, owner_url, password)
    assert result.returncode == 0, result.stderr
    with open(postgres.logfile, "rb") as handle:
        handle.seek(start)
        logged = handle.read().decode(errors="replace")
    assert f'ROLE "{service}" WITH LOGIN PASSWORD \'SCRAM-SHA-256$4096:' in logged  # the statement was logged
    assert password not in logged
    with closing(psycopg2.connect(postgres.url(service, password, service))) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone() == (service,)  # the verifier made here lets the password log in
