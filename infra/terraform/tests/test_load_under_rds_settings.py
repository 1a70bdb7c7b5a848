"""The load task against the database settings RDS gets from the parameter group: a server-wide
`statement_timeout` applies to a COPY too, and cancels the load unless the loader lifts it for
its own session. Real PostgreSQL; the cap is set on the test database (each new session's
default, as a server-wide setting is), scaled down so that a small COPY outlasts it."""
import time
from contextlib import closing

import psycopg2
import pytest

from atelier_etl.generate import generate
from atelier_etl.load import load_service


CAP = "5ms"  # far below one file's COPY; the parameter group's 30 s is far below reviews.csv's


def parameter_group_settings(modules):
    group = modules["database"].resource("aws_db_parameter_group", "this")
    (dynamic,) = group["dynamic"]
    return dynamic["parameter"]["for_each"]


def test_the_parameter_group_caps_statements_and_idle_transactions(modules):
    settings = parameter_group_settings(modules)
    assert int(settings["statement_timeout"]) > 0  # the services' guard the loader must lift
    assert int(settings["idle_in_transaction_session_timeout"]) > 0


class SlowFile:
    """A file that arrives slowly (a large CSV, as far as the clock is concerned)."""

    def __init__(self, lines=20, pause=0.01):
        self.lines, self.pause = lines, pause

    def read(self, size=-1):
        if not self.lines:
            return ""
        self.lines -= 1
        time.sleep(self.pause)
        return "1\n"

    readline = read


@pytest.fixture(scope="module")
def reviews_csv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("capped")
    generate(folder, scale=0.002, seed=5, dirty=False, jobs=1, log=None)
    return folder


@pytest.fixture
def capped_database(database_factory, postgres):
    url = database_factory("reviews")
    database = psycopg2.extensions.parse_dsn(url.owner)["dbname"]
    with closing(psycopg2.connect(url.owner)) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE probe (n int)")  # before the cap: the probe's only statement is its COPY
        conn.commit()
    with closing(postgres.admin_connect()) as conn, conn.cursor() as cur:
        cur.execute(f'ALTER DATABASE "{database}" SET statement_timeout = %s', (CAP,))
        cur.execute(f'ALTER DATABASE "{database}" SET idle_in_transaction_session_timeout = %s', (CAP,))
    return url


def database_settings(postgres, url):
    """The database's session defaults, read from outside it (a session inside would be capped)."""
    database = psycopg2.extensions.parse_dsn(url.owner)["dbname"]
    with closing(postgres.admin_connect()) as conn, conn.cursor() as cur:
        cur.execute("SELECT setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
                    "WHERE d.datname = %s AND s.setrole = 0", (database,))
        return sorted(cur.fetchone()[0])


def test_the_cap_cancels_a_copy_that_does_not_lift_it(capped_database, postgres):
    assert database_settings(postgres, capped_database) == [
        f"idle_in_transaction_session_timeout={CAP}", f"statement_timeout={CAP}"]
    with closing(psycopg2.connect(capped_database.owner)) as conn, conn.cursor() as cur:
        with pytest.raises(psycopg2.errors.QueryCanceled):
            cur.copy_expert("COPY probe FROM STDIN", SlowFile())


def test_the_loader_lifts_the_cap_for_its_own_session(capped_database, reviews_csv, tmp_path, postgres):
    reports = load_service("reviews", reviews_csv, tmp_path / "rejects", capped_database.owner)
    assert sum(report.loaded for report in reports) > 10_000
    assert f"statement_timeout={CAP}" in database_settings(postgres, capped_database)  # other sessions keep it
    # Counted without the cap (a startup option), so that a busy machine cannot cancel the count.
    with closing(psycopg2.connect(capped_database, options="-c statement_timeout=0")) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM review")
        assert cur.fetchone()[0] > 1000
