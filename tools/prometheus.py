"""`make prometheus`: Debian's Prometheus, scraping /metrics of every gunicorn instance that
`make up` started, with its data in .data/prometheus/ (`make down` stops it).

The instances are found from their pid files in .data/run/ (`<service>.pid` or
`<service>-<i>.pid`) and the ports their gunicorn masters listen on, so any number of
instances on any ports is scraped. Run it again after the fleet changes: it rewrites the
targets, which a running Prometheus picks up by itself.
"""
import argparse
import os
import shutil
import subprocess
import sys
import urllib.request

import psutil

from atelier_common.fleet import instance_addresses
from atelier_common.localpg import DATA, ROOT, SERVICES, wait_for

RUN = DATA / "run"
HOME = DATA / "prometheus"
LOG = DATA / "logs" / "prometheus.log"
PIDFILE = RUN / "prometheus.pid"
CONFIG = ROOT / "infra" / "prometheus"


def running_pid():
    try:
        pid = int(PIDFILE.read_text().strip())
        return pid if psutil.pid_exists(pid) else None
    except (FileNotFoundError, ValueError):
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PROMETHEUS_PORT", "9090")))
    parser.add_argument("--scrape-interval", default="5s")
    args = parser.parse_args(argv)
    binary = shutil.which("prometheus")
    if not binary:
        raise SystemExit("Prometheus is not installed: `make install` installs it (as root)")

    targets = [f"{service}={address}" for service in SERVICES for address in instance_addresses(service)]
    if not targets:
        raise SystemExit("no running instance found in .data/run/: run `make up` first")
    HOME.mkdir(parents=True, exist_ok=True)
    shutil.copy(CONFIG / "prometheus.yml", HOME / "prometheus.yml")
    subprocess.run([sys.executable, str(CONFIG / "targets.py"), "--out", str(HOME / "targets.json"),
                    "--scrape-interval", args.scrape_interval, *[f"--target={t}" for t in targets]], check=True)
    url = f"http://127.0.0.1:{args.port}"
    if running_pid():
        print(f"[atelier] Prometheus already running ({url}); targets rewritten: {' '.join(targets)}")
        return
    RUN.mkdir(parents=True, exist_ok=True)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [binary, f"--config.file={HOME / 'prometheus.yml'}", f"--storage.tsdb.path={HOME / 'data'}",
         f"--web.listen-address=127.0.0.1:{args.port}", "--storage.tsdb.retention.time=7d"],
        stdout=subprocess.DEVNULL, stderr=open(LOG, "a"), stdin=subprocess.DEVNULL, start_new_session=True)
    PIDFILE.write_text(f"{process.pid}\n")

    def ready():
        if process.poll() is not None:
            raise SystemExit(f"Prometheus exited; see {LOG.relative_to(ROOT)}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    wait_for(ready, 30, "Prometheus")
    print(f"[atelier] Prometheus on {url} scraping {' '.join(targets)} (data in {HOME.relative_to(ROOT)}, "
          f"log {LOG.relative_to(ROOT)}); `make down` stops it.")


if __name__ == "__main__":
    main()
