"""Least privilege (common/atelier_common/roles.py): the role a service runs with reads and
writes its own tables and can do nothing else; the owner role does the loading and the DDL."""
from contextlib import closing

import psycopg2
import psycopg2.errors
import pytest

from atelier_common.localpg import owner_database_url
from atelier_common.roles import owner_role

SERVICES = ("products", "qa", "reviews")


def run(url: str, *statements, autocommit=False):
    """Run statements in one transaction that is always rolled back; returns the last rows."""
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        conn.autocommit = autocommit  # CREATE DATABASE, ALTER SYSTEM refuse a transaction
        try:
            for statement in statements:
                cur.execute(statement)
            return cur.fetchall() if cur.description else None
        finally:
            conn.rollback()


def tables_and_sequences(url: str):
    rows = run(url, """SELECT c.relname, c.relkind FROM pg_class c
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S') ORDER BY 1""")
    return [name for name, kind in rows if kind == "r"], [name for name, kind in rows if kind == "S"]


@pytest.mark.parametrize("service", SERVICES)
def test_the_runtime_role_reads_writes_and_draws_ids_on_every_table(databases, service):
    url = databases[service]
    tables, sequences = tables_and_sequences(url.owner)
    assert tables and sequences
    for table in tables:
        column = run(url.owner, "SELECT attname FROM pg_attribute WHERE attnum = 1 "
                                f"AND attrelid = '{table}'::regclass")[0][0]
        run(url, f"SELECT * FROM {table} LIMIT 1", f"INSERT INTO {table} SELECT * FROM {table} WHERE false",
            f"UPDATE {table} SET {column} = {column} WHERE false", f"DELETE FROM {table} WHERE false")
    for sequence in sequences:
        run(url, f"SELECT nextval('{sequence}')")
    rows = run(url, "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls "
                    "FROM pg_roles WHERE rolname = current_user")
    assert rows == [(False, False, False, False)]


DENIED = {
    "create a table": ("CREATE TABLE intruder (id int)", "permission denied for schema public"),
    "create a temporary table": ("CREATE TEMP TABLE intruder (id int)", "permission denied to create temporary tables"),
    "create a schema": ("CREATE SCHEMA intruder", "permission denied for database"),
    "create a function": ("CREATE FUNCTION intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
                          "permission denied for schema public"),
    "drop a table": ("DROP TABLE {table}", "must be owner of table {table}"),
    "alter a table": ("ALTER TABLE {table} ADD COLUMN intruder int", "must be owner of table {table}"),
    "index a table": ("CREATE INDEX intruder ON {table} (id)", "must be owner of table {table}"),
    "truncate a table": ("TRUNCATE {table}", "permission denied for table {table}"),
    "reset a sequence": ("SELECT setval('{sequence}', 1)", "permission denied for sequence {sequence}"),
    "become the superuser": ("SET ROLE postgres", "permission denied to set role"),
    "become the owner": ("SET ROLE {owner}", "permission denied to set role"),
    "read a server file": ("SELECT pg_read_file('postgresql.conf')", "permission denied for function pg_read_file"),
    "write a server file": ("COPY (SELECT 1) TO '/tmp/intruder'", "permission denied to COPY to a file"),
    "create a database": ("CREATE DATABASE intruder", "permission denied to create database"),
    "create a role": ("CREATE ROLE intruder", "permission denied to create role"),
    "change a setting for everyone": ("ALTER SYSTEM SET work_mem = '1GB'", "permission denied to set parameter"),
}


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("what", sorted(DENIED))
def test_the_runtime_role_is_denied(databases, service, what):
    url = databases[service]
    tables, sequences = tables_and_sequences(url.owner)
    owner = run(url.owner, "SELECT current_user")[0][0]
    statement, message = (text.format(table=tables[0], sequence=sequences[0], owner=owner)
                          for text in DENIED[what])
    with pytest.raises(psycopg2.errors.InsufficientPrivilege) as denied:
        run(url, statement, autocommit=what in ("create a database", "change a setting for everyone"))
    assert message in str(denied.value)


def test_no_role_reaches_another_services_database(databases):
    for service in SERVICES:
        for other in SERVICES:
            if other == service:
                continue
            foreign = databases[other].rsplit("/", 1)[1]
            for url in (databases[service], databases[service].owner):
                for database in (foreign, "postgres", "template1"):
                    with pytest.raises(psycopg2.OperationalError, match="CONNECT privilege"):
                        psycopg2.connect(url.rsplit("/", 1)[0] + "/" + database).close()


def test_what_the_owner_creates_later_is_usable_at_once_and_nothing_more(databases):
    """The loader's way of replacing data: build a new schema and tables beside the live ones,
    then swap. Default privileges hand the runtime role DML on them with no grant step."""
    url = databases["qa"]
    with closing(psycopg2.connect(url.owner)) as conn, conn, conn.cursor() as cur:
        cur.execute("CREATE SCHEMA staging")
        cur.execute("CREATE TABLE staging.fresh (id integer GENERATED BY DEFAULT AS IDENTITY, "
                    "note text)")
        cur.execute("CREATE SEQUENCE staging.counter")
        cur.execute("CREATE TABLE public.fresh_public (id serial, note text)")
    try:
        with closing(psycopg2.connect(url)) as conn, conn, conn.cursor() as cur:
            cur.execute("INSERT INTO staging.fresh (note) VALUES ('a') RETURNING id")
            cur.execute("UPDATE staging.fresh SET note = 'b'")
            cur.execute("SELECT nextval('staging.counter')")
            cur.execute("INSERT INTO public.fresh_public (note) VALUES ('c')")
            cur.execute("DELETE FROM public.fresh_public")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="must be owner"):
            run(url, "DROP TABLE staging.fresh")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="permission denied for schema staging"):
            run(url, "CREATE TABLE staging.intruder (id int)")
    finally:
        with closing(psycopg2.connect(url.owner)) as conn, conn, conn.cursor() as cur:
            cur.execute("DROP SCHEMA staging CASCADE; DROP TABLE public.fresh_public")


def test_a_database_from_before_the_two_roles_is_handed_to_its_owner(postgres):
    """Local stacks made before this change had the runtime role own everything."""
    service = "privtest"
    postgres.drop_database(service)
    postgres.ensure_role(service, "pw")
    postgres.ensure_database(service, service)
    old = postgres.url(service, "pw", service)
    run_committed = psycopg2.connect(old)
    with closing(run_committed) as conn, conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE legacy (id serial, note text)")
    try:
        url = postgres.ensure_service_database(service, "pw", "pw-owner")
        assert url == old
        owner_url = postgres.url(owner_role(service), "pw-owner", service)
        assert run(owner_url, "SELECT tableowner FROM pg_tables WHERE tablename = 'legacy'") == [
            (owner_role(service),)]
        run(url, "INSERT INTO legacy (note) VALUES ('kept working')")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="must be owner"):
            run(url, "DROP TABLE legacy")
    finally:
        postgres.drop_database(service)


def test_the_loader_uses_the_owner_url(monkeypatch):
    monkeypatch.setenv("QA_DATABASE_URL", "postgresql://qa:x@db/qa")
    monkeypatch.delenv("QA_OWNER_DATABASE_URL", raising=False)
    assert owner_database_url("qa") == "postgresql://qa:x@db/qa"  # one role for both, when unset
    monkeypatch.setenv("QA_OWNER_DATABASE_URL", "postgresql://qa_owner:y@db/qa")
    assert owner_database_url("qa") == "postgresql://qa_owner:y@db/qa"
