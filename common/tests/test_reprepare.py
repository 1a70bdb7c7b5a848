"""A prepared statement that a reload or a schema change made unusable is prepared again
(atelier_common.db.Statement), not turned into an error for the client."""
from contextlib import closing

import psycopg2
import pytest

from atelier_common.db import Statement, _Connection

READ = Statement("reprepare_read", "SELECT * FROM probe WHERE id = $1")


@pytest.fixture
def conn(database_factory):
    url = database_factory("qa").owner  # the test changes the schema
    with closing(psycopg2.connect(url, connection_factory=_Connection)) as connection:
        with connection.cursor() as cur:
            cur.execute("CREATE TABLE probe (id integer)")
            cur.execute("INSERT INTO probe VALUES (1)")
        yield connection


def test_a_statement_whose_result_type_changed_is_prepared_again(conn):
    with conn.cursor() as cur:
        assert READ.run(cur, (1,)).fetchall() == [(1,)]
        cur.execute("ALTER TABLE probe ADD COLUMN label text DEFAULT 'x'")  # what a reload may do
        assert READ.run(cur, (1,)).fetchall() == [(1, "x")]


def test_a_statement_the_server_forgot_is_prepared_again(conn):
    with conn.cursor() as cur:
        READ.run(cur, (1,))
        cur.execute("DEALLOCATE ALL")
        assert READ.run(cur, (1,)).fetchall() == [(1,)]


def test_inside_a_transaction_the_error_goes_up_and_the_next_use_works(conn):
    with conn.cursor() as cur:
        READ.run(cur, (1,))
        cur.execute("ALTER TABLE probe ADD COLUMN label text DEFAULT 'x'")
        cur.execute("BEGIN")
        with pytest.raises(psycopg2.errors.FeatureNotSupported):
            READ.run(cur, (1,))
        cur.execute("ROLLBACK")
        for name in conn.stale:  # what atelier_common.db.transaction() does after its ROLLBACK
            cur.execute(f"DEALLOCATE {name}")
        assert READ.run(cur, (1,)).fetchall() == [(1, "x")]
