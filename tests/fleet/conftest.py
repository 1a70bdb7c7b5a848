"""Fixtures for the fleet tests: real gunicorn instances behind a real nginx rendered by
infra/nginx/render.py, on free ports, against the test PostgreSQL (independent of `make up`).

`start_fleet(service, instances=2)` returns a Fleet of instances on a fresh database;
`fleet.add_balancer(cache=1, write_rate_limit=0, **render_options)` puts an nginx in front, with
its cache listener (listener=False: none, so it caches no mutable view);
`fleet.add_front(balancers)` a round-robin front over balancers, as the AWS load balancer.
Every process started by a test (or module) is stopped afterwards, by pid file."""
import os
import re
import shutil
import signal
import tempfile
import time
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
import requests

from atelier_common import fleet as fleet_tools
from atelier_common.localpg import DATA, wait_for



class Balancer:
    """One nginx rendered by infra/nginx/render.py in front of the fleet's instances (or, for a
    front, in front of balancers), with its cache listener."""

    def __init__(self, fleet, name: str, cache: int, write_rate_limit: int, upstreams=None, front=False,
                 listener=True, memory_cache=False, **render_options):
        self.fleet = fleet
        self.port = fleet_tools.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.prefix = fleet.folder / name
        self.pidfile = fleet.folder / f"{name}.pid"
        self.listener_pidfile = fleet.folder / f"{name}-listener.pid"
        self.listener_log = fleet.folder / f"{name}-listener.log"
        self.access_log = fleet.folder / f"{name}-access.log"
        extra = ["--access-log", str(self.access_log)]
        for option, value in render_options.items():
            extra += [f"--{option.replace('_', '-')}", str(value)]
        upstreams = upstreams or [f"127.0.0.1:{p}" for p in fleet.ports]
        conf, _ = fleet_tools.render_balancer(
            fleet.service, f"127.0.0.1:{self.port}", upstreams, self.prefix,
            self.pidfile, cache=cache, write_rate_limit=write_rate_limit, extra=extra, front=front,
            memory_cache=memory_cache)
        fleet_tools.start_balancer(fleet_tools.nginx_binary(), conf, self.pidfile)
        wait_for(lambda: fleet_tools.ready(self.base + "/healthz"), 10, f"{fleet.service} balancer {name}")
        if listener and not front:
            self.start_listener()
        self.session = requests.Session()

    def start_listener(self):
        fleet_tools.start_listener(self.fleet.service, self.prefix, self.fleet.database_url,
                                   self.listener_pidfile, self.listener_log)

    def kill_listener(self):
        """SIGKILL the listener (it cannot say goodbye) and wait until it is gone."""
        pid = fleet_tools.pid_alive(self.listener_pidfile)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _alive(pid), 10, "killed listener gone")
        self.listener_pidfile.unlink(missing_ok=True)

    def state(self, *keys) -> dict:
        return fleet_tools.balancer_state(self.prefix, keys)

    def control(self, method: str, path: str, body: bytes = b""):
        return fleet_tools.control_request(self.prefix, method, path, body)

    def get(self, path: str, **kwargs):
        return self.session.get(self.base + path, timeout=15, **kwargs)

    def put(self, path: str, **kwargs):
        return self.session.put(self.base + path, timeout=15, **kwargs)

    def post(self, path: str, **kwargs):
        return self.session.post(self.base + path, timeout=15, **kwargs)

    def upstreams_in_log(self, path_start: str) -> dict:
        """{instance address: requests for paths starting with path_start}, from the access log
        (buffered: flushed every second); "-" counts the requests the cache answered alone."""
        time.sleep(1.2)
        counts = {}
        for line in self.access_log.read_text().splitlines():
            request_path = line.split('"')[1].split()[1]
            if not request_path.startswith(path_start):
                continue
            # "up=a" or, when the first instance failed and the next one answered, "up=a, b"
            address = re.search(r" up=(.*?) cache=", line)[1]
            counts[address] = counts.get(address, 0) + 1
        return counts

    def flush(self) -> bool:
        return fleet_tools.flush_balancer(self.prefix)



class Fleet:
    """A service's instances (gunicorn, one worker each) and its balancers (nginx)."""

    def __init__(self, service: str, database_url: str, folder: Path, instances: int):
        self.service = service
        self.database_url = database_url
        self.folder = folder
        self.ports = [fleet_tools.free_port() for _ in range(instances)]
        self.pidfiles = [folder / f"instance-{i}.pid" for i in range(instances)]
        self.balancers = []

    def start_instances(self):
        for i, port in enumerate(self.ports):
            fleet_tools.start_instance(self.service, port, self.database_url, self.pidfiles[i],
                                       self.folder / f"instance-{i}.log")
        for port in self.ports:
            wait_for(lambda: fleet_tools.ready(f"http://127.0.0.1:{port}/readyz"), 30, f"{self.service} instance :{port}")

    def add_balancer(self, cache: int = 1, write_rate_limit: int = 0, **options) -> Balancer:
        balancer = Balancer(self, f"nginx-{len(self.balancers)}", cache, write_rate_limit, **options)
        self.balancers.append(balancer)
        return balancer

    def add_front(self, balancers) -> Balancer:
        """The stand-in for the AWS load balancer: round robin over `balancers`."""
        return self.add_balancer(upstreams=[f"127.0.0.1:{b.port}" for b in balancers], front=True)

    def sql(self, statement: str, params=()):
        """Run one statement on the fleet's database; its rows, if it returns any."""
        with closing(psycopg2.connect(self.database_url)) as conn, conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None

    def value(self, statement: str, params=()):
        return self.sql(statement, params)[0][0]

    def direct(self, i: int, path: str):
        """A GET straight to instance i: what the database says now, with no cache between."""
        return requests.get(f"http://127.0.0.1:{self.ports[i]}{path}", timeout=15)

    def signal_instance(self, i: int, signum: int):
        """Signal instance i's whole process group (gunicorn master and workers: the instance
        dies, or freezes, at once, as a crashed or hung machine would)."""
        pid = fleet_tools.pid_alive(self.pidfiles[i])
        os.killpg(os.getpgid(pid), signum)

    def kill_instance(self, i: int):
        pid = fleet_tools.pid_alive(self.pidfiles[i])
        self.signal_instance(i, signal.SIGKILL)
        wait_for(lambda: not _alive(pid), 10, "killed instance gone")
        self.pidfiles[i].unlink(missing_ok=True)

    def stop(self):
        fleet_tools.stop_pids([balancer.pidfile for balancer in self.balancers], seconds=10)
        fleet_tools.stop_pids([balancer.listener_pidfile for balancer in self.balancers], seconds=10)
        for balancer in self.balancers:
            fleet_tools.remove_memory_cache(balancer.prefix)
        for i, pidfile in enumerate(self.pidfiles):
            if fleet_tools.pid_alive(pidfile):
                self.signal_instance(i, signal.SIGCONT)  # a frozen instance cannot stop
        fleet_tools.stop_pids(self.pidfiles, seconds=10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _fleet_factory(database_factory):
    started = []

    def start(service: str, instances: int = 2) -> Fleet:
        """`instances` instances on a fresh database; add balancers with fleet.add_balancer()."""
        if not fleet_tools.nginx_binary():  # a missing balancer fails the tests, never skips them
            pytest.fail(f"nginx with its Lua module is missing; as root: {fleet_tools.install_command()}")
        # Under .data, not the 0700 pytest temp folder: nginx's workers (as `nobody` when the
        # tests run as root) must reach the cache folder.
        (DATA / "test-fleets").mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"{service}-", dir=DATA / "test-fleets"))
        folder.chmod(0o755)
        fleet = Fleet(service, database_factory(service), folder, instances)
        started.append(fleet)
        fleet.start_instances()
        return fleet

    def stop_all():
        for fleet in started:
            fleet.stop()
            shutil.rmtree(fleet.folder, ignore_errors=True)

    return start, stop_all


@pytest.fixture(scope="module")
def start_fleet(database_factory):
    """Fleets shared by a module's tests (stopped after the module)."""
    start, stop_all = _fleet_factory(database_factory)
    yield start
    stop_all()


@pytest.fixture
def start_own_fleet(database_factory):
    """Fleets for one test that kills or freezes instances (stopped after the test)."""
    start, stop_all = _fleet_factory(database_factory)
    yield start
    stop_all()
