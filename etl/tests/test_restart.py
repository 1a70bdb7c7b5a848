"""A load killed with SIGKILL at any point changes nothing (the services keep the old data), and
running it again gives exactly the database one clean run gives: row counts and a checksum of
every table and sequence, per service, compared at several kill points (in a file's COPY, in
index builds, in the derived tables)."""
import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from contextlib import closing

import psycopg2
import pytest

from atelier_etl.generate import generate
from atelier_etl.load import load_service

SERVICES = ("products", "qa", "reviews")
TABLES = {
    "products": ("product", "feature", "style", "photo", "sku", "related", "product_document"),
    "qa": ("question", "answer", "answer_photo"),
    "reviews": ("review", "review_photo", "characteristic", "characteristic_review", "characteristic_tally",
                "review_summary"),
}


def digest(url, service):
    """{table: (rows, sha256 of the rows in order)} and every sequence's next value; the schemas
    present (a leftover load schema would show)."""
    found = {}
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        for table in TABLES[service]:
            buffer = io.StringIO()
            cur.copy_expert(f"COPY (SELECT * FROM {table} ORDER BY 1) TO STDOUT", buffer)
            text = buffer.getvalue()
            found[table] = (text.count("\n"), hashlib.sha256(text.encode()).hexdigest())
        cur.execute("SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = current_schema() "
                    "ORDER BY 1")
        found["sequences"] = cur.fetchall()
        cur.execute("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                    "AND nspname <> 'information_schema' ORDER BY 1")
        found["schemas"] = cur.fetchall()
    return found


def data_of(found):
    return {key: value for key, value in found.items() if key != "schemas"}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    old, new = tmp_path_factory.mktemp("old"), tmp_path_factory.mktemp("new")
    generate(old, scale=0.001, seed=5, dirty=True, jobs=1, log=None)
    generate(new, scale=0.006, seed=6, dirty=True, jobs=1, log=None)
    return old, new


@pytest.fixture(scope="module")
def reference(datasets, database_factory, tmp_path_factory):
    """What one clean run of each data set gives."""
    rejects = tmp_path_factory.mktemp("rejects")
    found = {}
    for name, folder in zip(("old", "new"), datasets):
        for service in SERVICES:
            url = database_factory(service)
            load_service(service, folder, rejects, url.owner)
            found[name, service] = digest(url, service)
    return found


class _Watch:
    """The statement a service's loader runs now (pg_stat_activity), over one open connection."""

    def __init__(self, url):
        self.conn = psycopg2.connect(url)
        self.conn.autocommit = True

    def running(self) -> str:
        with self.conn.cursor() as cur:
            cur.execute("SELECT query FROM pg_stat_activity WHERE application_name = 'atelier-load' "
                        "AND datname = current_database() AND state = 'active'")
            row = cur.fetchone()
        return row[0] if row else ""


def _wait_until_no_load_backend(url, seconds=30):
    with closing(psycopg2.connect(url)) as conn:
        conn.autocommit = True
        deadline = time.monotonic() + seconds
        while True:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'atelier-load' "
                            "AND datname = current_database()")
                if cur.fetchone()[0] == 0:
                    return
            assert time.monotonic() < deadline, "a killed load's backend is still running"
            time.sleep(0.1)


def _run_load(folder, urls, rejects, **popen):
    env = dict(os.environ, **{f"{s.upper()}_DATABASE_URL": u for s, u in urls.items()},
               **{f"{s.upper()}_OWNER_DATABASE_URL": u.owner for s, u in urls.items()})
    return subprocess.Popen([sys.executable, "-m", "atelier_etl.load", "--data", str(folder), "--rejects", str(rejects)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            **popen)


# (service, text the statement it runs starts with or contains): where the kill lands
KILL_POINTS = [
    ("products", "COPY photo"),
    ("reviews", "COPY characteristic_review"),
    ("products", "Keys, indexes"),
    ("reviews", "CREATE INDEX review_relevant_idx"),
    ("reviews", "INSERT INTO review_summary"),
    ("qa", "ANALYZE question"),
]


@pytest.mark.parametrize("service,statement", KILL_POINTS)
def test_a_killed_load_changes_nothing_and_a_rerun_gives_the_clean_result(
        service, statement, datasets, reference, database_factory, tmp_path):
    old, new = datasets
    urls = {s: database_factory(s) for s in SERVICES}
    for s in SERVICES:
        load_service(s, old, tmp_path / "first", urls[s].owner)
    process = _run_load(new, urls, tmp_path / "killed")
    watch = _Watch(urls[service].owner)  # the loader's role: it may read its sessions' queries
    deadline = time.monotonic() + 120
    while statement not in watch.running():
        assert process.poll() is None, f"the load ended before reaching {statement!r}"
        assert time.monotonic() < deadline
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    watch.conn.close()
    # A backend whose client died may still be finishing the statement it was given (the swap's
    # COMMIT, say): PostgreSQL notices the dead client within client_connection_check_interval.
    # Compare the databases once every load backend has ended, committed or rolled back, so no
    # digest reads one table before that commit and the next after it.
    for s in SERVICES:
        _wait_until_no_load_backend(urls[s].owner)
    # The killed service still holds the old data; the others hold the old or, if their load had
    # committed already, the new data (and perhaps the replaced schema, which the next load drops).
    assert data_of(digest(urls[service], service)) == data_of(reference["old", service])
    for s in SERVICES:
        assert data_of(digest(urls[s], s)) in (data_of(reference["old", s]), data_of(reference["new", s])), s
    rerun = _run_load(new, urls, tmp_path / "rerun")
    assert rerun.wait(timeout=300) == 0
    for s in SERVICES:
        assert digest(urls[s], s) == reference["new", s], s
