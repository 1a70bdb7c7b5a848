"""Fault tests: real gunicorn instances behind a real nginx balancer (infra/nginx/render.py),
on a PostgreSQL server of their own (`chaos_pg`: these tests stop it, make it read-only, lock
its rows), with a steady read+write load from a few client threads.

Every process started here is stopped afterwards, by pid file or pid."""
import random
import secrets
import shutil
import tempfile
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg2
import pytest
import requests

from atelier_common import fleet as fleet_tools
from atelier_common.testing import answers
from atelier_common.localpg import DATA, LocalPostgres, wait_for
from atelier_common.roles import owner_role
from atelier_common.schema import apply_schema

if not fleet_tools.nginx_binary():
    pytest.skip(f"nginx with its Lua module is missing: {fleet_tools.install_command()}",
                allow_module_level=True)

PRODUCTS = range(1, 41)  # seeded products, each with questions


class ChaosDatabase:
    """The qa database on the chaos server: runtime and owner URLs, direct SQL as the owner."""

    def __init__(self, pg: LocalPostgres):
        self.pg = pg
        password, owner_password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
        self.url = pg.ensure_service_database("qa", password, owner_password)
        self.owner_url = pg.url(owner_role("qa"), owner_password, "qa")

    def reset(self):
        """Empty tables, then a few questions per product (some with answers)."""
        apply_schema(self.owner_url, "qa")
        with closing(psycopg2.connect(self.owner_url)) as conn, conn, conn.cursor() as cur:
            cur.execute("""
                INSERT INTO question (product_id, body, date_written, asker_name, asker_email)
                SELECT p, 'question ' || q, now(), 'asker', 'asker@example.com'
                FROM generate_series(1, %s) p, generate_series(1, 3) q""", (len(PRODUCTS),))
            cur.execute("""
                INSERT INTO answer (question_id, body, date_written, answerer_name, answerer_email)
                SELECT id, 'answer', now(), 'seller', 'seller@example.com' FROM question""")

    def value(self, sql: str, params=()):
        with closing(psycopg2.connect(self.owner_url)) as conn, conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchone()[0]

    def admin_value(self, sql: str):
        with closing(self.pg.admin_connect("qa")) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]

    def admin(self, *statements):
        with closing(self.pg.admin_connect("qa")) as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)


@pytest.fixture(scope="session")
def chaos_pg():
    """A PostgreSQL server of these tests' own (on a free port): stopping it or making it
    read-only disturbs no other test."""
    pg = LocalPostgres(DATA / "pg-chaos", port=fleet_tools.free_port())
    pg.start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def chaos_db(chaos_pg):
    db = ChaosDatabase(chaos_pg)
    db.reset()
    return db


class Fleet:
    """qa instances (gunicorn, one worker each) behind one nginx balancer, cache off (every
    read reaches the database), no write rate limit."""

    SETTINGS = {"DB_STATEMENT_TIMEOUT_MS": 1500, "DB_POOL_MAX": 4, "DB_POOL_WAIT_SECONDS": 0.5,
                "DB_CONNECT_TIMEOUT_SECONDS": 1, "GRACEFUL_TIMEOUT": 15}

    def __init__(self, database_url: str, instances: int = 2, **env):
        (DATA / "test-fleets").mkdir(parents=True, exist_ok=True)
        # nginx's workers (`nobody` when the tests run as root) must reach the folder.
        self.folder = Path(tempfile.mkdtemp(prefix="chaos-", dir=DATA / "test-fleets"))
        self.folder.chmod(0o755)
        self.env = {**self.SETTINGS, **env}
        self.database_url = database_url
        self.ports = [fleet_tools.free_port() for _ in range(instances)]
        self.pidfiles = [self.folder / f"instance-{i}.pid" for i in range(instances)]
        for i in range(instances):
            self.start_instance(i)
        self.port = fleet_tools.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.balancer_pidfile = self.folder / "nginx.pid"
        conf, _ = fleet_tools.render_balancer(
            "qa", f"127.0.0.1:{self.port}", [f"127.0.0.1:{p}" for p in self.ports],
            self.folder / "nginx", self.balancer_pidfile, cache=0, write_rate_limit=0,
            extra=["--access-log", str(self.folder / "access.log")])
        fleet_tools.start_balancer(fleet_tools.nginx_binary(), conf, self.balancer_pidfile)
        wait_for(lambda: answers(self.base + "/healthz"), 10, "chaos balancer")

    def start_instance(self, i: int):
        fleet_tools.start_instance("qa", self.ports[i], self.database_url, self.pidfiles[i],
                                   self.folder / f"instance-{i}.log", **self.env)
        wait_for(lambda: answers(f"http://127.0.0.1:{self.ports[i]}/healthz"), 30, f"instance {i}")

    def instance(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    def master(self, i: int) -> psutil.Process:
        return psutil.Process(fleet_tools.pid_alive(self.pidfiles[i]))

    def workers(self) -> dict:
        """{instance: sorted worker pids}: a worker that died and was replaced changes it."""
        return {i: sorted(child.pid for child in self.master(i).children()) for i in range(len(self.ports))}

    def log_text(self) -> str:
        return "".join(path.read_text() for path in sorted(self.folder.glob("instance-*.log")))

    def stop(self):
        fleet_tools.stop_pid(self.balancer_pidfile, seconds=10)
        for pidfile in self.pidfiles:
            fleet_tools.stop_pid(pidfile, seconds=20)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def chaos_fleet(chaos_db):
    fleet = Fleet(chaos_db.url)
    yield fleet
    fleet.stop()


@dataclass
class Outcome:
    started: float
    finished: float
    method: str
    path: str
    status: int = None       # None: no HTTP answer at all (refused, reset, timed out)
    retry_after: str = None
    location: str = None
    error: str = None


class Load:
    """A steady read+write mix from `clients` threads (each paced, not flat out): GET questions
    and answers, POST questions, PUT helpful. Every outcome is kept, with its times."""

    def __init__(self, base: str, question_ids, clients: int = 6, pause: float = 0.01, seed: int = 1):
        self.base = base
        self.question_ids = list(question_ids)
        self.clients = clients
        self.pause = pause
        self.seed = seed
        self.outcomes = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _request(self, rng: random.Random):
        roll = rng.random()
        if roll < 0.55:
            return "GET", f"/qa/questions?product_id={rng.choice(PRODUCTS)}&count=5", None
        if roll < 0.75:
            return "GET", f"/qa/questions/{rng.choice(self.question_ids)}/answers", None
        if roll < 0.88:
            return "POST", "/qa/questions", {"body": "Does it run small?", "name": "load",
                                             "email": "load@example.com", "product_id": rng.choice(PRODUCTS)}
        return "PUT", f"/qa/questions/{rng.choice(self.question_ids)}/helpful", None

    def _client(self, number: int):
        rng = random.Random(self.seed * 1000 + number)
        session = requests.Session()
        while not self._stop.is_set():
            method, path, body = self._request(rng)
            outcome = Outcome(time.monotonic(), 0.0, method, path)
            try:
                response = session.request(method, self.base + path, json=body, timeout=10)
                outcome.status = response.status_code
                outcome.retry_after = response.headers.get("Retry-After")
                outcome.location = response.headers.get("Location")
            except requests.RequestException as error:
                outcome.error = type(error).__name__
                session = requests.Session()
            outcome.finished = time.monotonic()
            with self._lock:
                self.outcomes.append(outcome)
            time.sleep(self.pause)

    def __enter__(self):
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True)
                         for n in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    def between(self, start: float, end: float) -> list:
        """Requests sent and answered inside [start, end]."""
        return [o for o in self.outcomes if o.started >= start and o.finished <= end]


@pytest.fixture(scope="session")
def question_ids(chaos_db):
    """The seeded questions' ids (reset() numbers them from 1)."""
    return list(range(1, 3 * len(PRODUCTS) + 1))


@pytest.fixture
def load():
    """Load(base, question_ids, clients=6): a context manager (import mode `importlib` cannot
    import conftest, so the class travels as a fixture)."""
    return Load


@pytest.fixture
def make_fleet():
    """make_fleet(database_url, instances=2, **env) -> a Fleet of the test's own, stopped after it."""
    fleets = []

    def make(database_url: str, instances: int = 2, **env):
        fleets.append(Fleet(database_url, instances, **env))
        return fleets[-1]

    yield make
    for fleet in fleets:
        fleet.stop()


def check_writes(db, outcomes, questions_before: int, helpful_before: int, question_ids) -> dict:
    """Nothing lost, nothing doubled: each 201's question stored once; rows and helpful votes
    added between the acknowledged and the acknowledged + refused (a refused write may have
    reached the server before its answer was lost). Returns the counts."""
    created = [int(o.location.rsplit("/", 1)[1]) for o in outcomes if o.status == 201]
    assert len(set(created)) == len(created)
    assert db.value("SELECT count(*) FROM question WHERE id = ANY(%s)", (created,)) == len(created)
    refused_posts = sum(1 for o in outcomes if o.method == "POST" and o.status == 503)
    added = db.value("SELECT count(*) FROM question") - questions_before
    assert len(created) <= added <= len(created) + refused_posts
    helpful = db.value("SELECT sum(helpful) FROM question WHERE id <= %s", (len(question_ids),))
    acknowledged = sum(1 for o in outcomes if o.method == "PUT" and o.status == 204)
    refused_puts = sum(1 for o in outcomes if o.method == "PUT" and o.status == 503)
    assert acknowledged <= helpful - helpful_before <= acknowledged + refused_puts
    return {"questions": (len(created), added, refused_posts),
            "votes": (acknowledged, helpful - helpful_before, refused_puts)}


@pytest.fixture
def writes_kept():
    """check_writes (import mode `importlib` cannot import conftest)."""
    return check_writes
