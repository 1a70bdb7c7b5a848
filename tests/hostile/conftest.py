"""Fixtures of the hostile-input tests: each service behind a real nginx balancer (cache off,
so every request reaches an instance; no write rate limit, so nothing is refused before it
is read), on a test database loaded with a small generated data set."""
import importlib
import shutil
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from atelier_common import fleet as fleet_tools
from atelier_common.testing import answers
from atelier_common.localpg import DATA, wait_for

if not fleet_tools.nginx_binary():
    pytest.skip(f"nginx with its Lua module is missing: {fleet_tools.install_command()}",
                allow_module_level=True)

SERVICES = ("products", "qa", "reviews")


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile-data")
    subprocess.run([sys.executable, "-m", "atelier_etl.generate", "--scale", "0.001", "--seed", "3",
                    "--out", str(folder)], check=True, capture_output=True)
    return folder


class Balanced:
    """One instance of a service and its balancer, on a freshly loaded database."""

    def __init__(self, service: str, database_url, data: Path):
        self.service = service
        self.database_url = database_url
        loader = importlib.import_module(f"{service}.loader")
        with closing(psycopg2.connect(database_url.owner)) as conn:
            loader.load(conn, data, data / "rejects" / service)
            conn.commit()
        (DATA / "test-fleets").mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix=f"hostile-{service}-", dir=DATA / "test-fleets"))
        self.folder.chmod(0o755)
        self.instance_port = fleet_tools.free_port()
        self.instance_pidfile = self.folder / "instance.pid"
        self.log = self.folder / "instance.log"
        fleet_tools.start_instance(service, self.instance_port, database_url, self.instance_pidfile, self.log)
        wait_for(lambda: answers(f"http://127.0.0.1:{self.instance_port}/readyz"), 30, f"{service} instance")
        self.port = fleet_tools.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.balancer_pidfile = self.folder / "nginx.pid"
        conf, _ = fleet_tools.render_balancer(
            service, f"127.0.0.1:{self.port}", [f"127.0.0.1:{self.instance_port}"],
            self.folder / "nginx", self.balancer_pidfile, cache=0, write_rate_limit=0,
            extra=["--access-log", str(self.folder / "access.log")])
        fleet_tools.start_balancer(fleet_tools.nginx_binary(), conf, self.balancer_pidfile)
        wait_for(lambda: answers(self.base + "/healthz"), 10, f"{service} balancer")

    def stop(self):
        fleet_tools.stop_pid(self.balancer_pidfile, seconds=10)
        fleet_tools.stop_pid(self.instance_pidfile, seconds=20)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def balanced(database_factory, small_data):
    """{service: Balanced}, started once for the hostile tests."""
    started = {}
    try:
        for service in SERVICES:
            started[service] = Balanced(service, database_factory(service), small_data)
        yield started
    finally:
        for item in started.values():
            item.stop()
