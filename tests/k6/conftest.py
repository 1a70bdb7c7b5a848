"""One real k6 smoke run shared by the load-report and dashboard tests: the three services
under gunicorn on a small generated catalogue, a real InfluxDB, and `python -m atelier_k6.loadtest run`
(the command behind `make loadtest`) pushing into it."""
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from atelier_common.localpg import SERVICES
from atelier_common.testing import free_port

PYTHON = sys.executable


def query_influx(base: str, query: str, database: str = "k6") -> list:
    """The series an InfluxQL query returns (InfluxDB's HTTP API, as Grafana calls it)."""
    url = f"{base}/query?" + urllib.parse.urlencode({"db": database, "q": query, "epoch": "ms"})
    with urllib.request.urlopen(url, timeout=30) as response:
        result = json.load(response)["results"][0]
    if "error" in result:
        raise AssertionError(f"{query}: {result['error']}")
    return result.get("series", [])


@pytest.fixture(scope="session")
def influx_query():
    return query_influx


@pytest.fixture(scope="session")
def loadtest():
    return run_loadtest


@pytest.fixture(scope="session")
def influx(tmp_path_factory):
    folder = tmp_path_factory.mktemp("influx")
    port, rpc_port = free_port(), free_port()
    command = [PYTHON, "-m", "atelier_k6.influx", "--port", str(port), "--rpc-port",
               str(rpc_port), "--data", str(folder), "--pidfile", str(folder / "influxdb.pid")]
    subprocess.run(command + ["start"], check=True)
    yield f"http://127.0.0.1:{port}"
    subprocess.run(command + ["stop"], check=True)


@pytest.fixture(scope="session")
def catalogue(tmp_path_factory):
    """A small generated data set (the generator of `make data`)."""
    folder = tmp_path_factory.mktemp("catalogue")
    subprocess.run([PYTHON, "-m", "atelier_etl.generate", "--scale", "0.001", "--out", str(folder)],
                   check=True, stdout=subprocess.DEVNULL)
    return folder


@pytest.fixture(scope="session")
def stack(tmp_path_factory, database_factory, catalogue):
    """The three services under gunicorn on the loaded catalogue: the environment that points
    atelier_k6.loadtest at them (database URLs for the ids, base URLs for k6)."""
    urls = {service: database_factory(service) for service in SERVICES}
    env = dict(os.environ, **{f"{s.upper()}_DATABASE_URL": u for s, u in urls.items()})
    # The loader creates tables: it runs as each database's owner, the services as its runtime role.
    owners = {f"{s.upper()}_OWNER_DATABASE_URL": u.owner for s, u in urls.items()}
    subprocess.run([PYTHON, "-m", "atelier_etl.load", "--data", str(catalogue),
                    "--rejects", str(tmp_path_factory.mktemp("rejects"))],
                   check=True, env=dict(env, **owners), stdout=subprocess.DEVNULL)
    servers = []
    try:
        for service in SERVICES:
            port = free_port()
            servers.append(subprocess.Popen(
                [str(Path(PYTHON).parent / "gunicorn"), "-c", "python:atelier_common.gunicorn_conf",
                 "--bind", f"127.0.0.1:{port}", f"{service}:create_app()"],
                env=dict(env, WEB_CONCURRENCY="1"), stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
            env[f"{service.upper()}_BASE_URL"] = f"http://127.0.0.1:{port}"
        for service in SERVICES:
            wait_ready(env[f"{service.upper()}_BASE_URL"] + "/readyz")
        yield env
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=20)


def run_loadtest(env: dict, folder: Path, *options: str, **overrides) -> dict:
    """`python -m atelier_k6.loadtest run` (what `make loadtest` runs): its exit code, output and run id."""
    completed = subprocess.run(
        [PYTHON, "-m", "atelier_k6.loadtest", "run", "--out", str(folder), *options],
        env=dict(env, **overrides), capture_output=True, text=True)
    summary = json.loads((folder / "summary.json").read_text())["metrics"]
    crossed = [f"{metric} {expression}: {values}" for metric, values in summary.items()
               for expression, failed in values.get("thresholds", {}).items() if failed]
    return {"folder": folder, "returncode": completed.returncode,
            "output": "\n".join(crossed) + "\n" + completed.stderr[-2000:],
            "run": json.loads((folder / "run.json").read_text())["run"]}


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, stack, influx):
    """One k6 smoke of the page-load mix into InfluxDB; a write on every page load, so that
    the writes show up in a 12-second run."""
    return run_loadtest(stack, tmp_path_factory.mktemp("smoke") / "run", "--profile", "smoke",
                    "--script", "page-load", "--influx", f"{influx}/k6",
                    DURATION="12s", RATE="20", WRITE_SHARE="1")


def wait_ready(url: str):
    from atelier_common.localpg import wait_for

    def ready():
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False
    wait_for(ready, 30, url)
