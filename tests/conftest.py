"""Fixtures of the cross-service reliability tests (logging, privileges, faults, hostile input)."""
from contextlib import closing

import psycopg2
import pytest


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
