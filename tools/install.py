"""`make install`: the system packages the project needs, from Debian's archive; the one place
that installs them (`make up`, `make test` and the benchmarks call it for what they need).

    python3 tools/install.py [what ...]     # what: a step or a group below; default: all

A step whose programs are present does nothing and says nothing. As root, a missing step is
installed quietly: one line per step, apt's own output in .data/logs/install.log. As another
user, it stops at once with the one command to run as root. Only the standard library: it runs
before the project's virtualenv exists.
"""
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / ".data" / "logs" / "install.log"
NGINX_MODULES = Path("/usr/lib/nginx/modules")


@dataclass(frozen=True)
class Step:
    what: str             # for a person
    packages: tuple       # Debian's package names
    programs: tuple = ()  # any one of them on PATH (or in /usr/sbin) means present
    files: tuple = ()     # and every one of these
    service: str = None   # Debian starts it on install; the project runs its own

    def present(self) -> bool:
        found = not self.programs or any(shutil.which(p) or Path("/usr/sbin", p).exists() for p in self.programs)
        return found and all(Path(f).exists() for f in self.files)


STEPS = {
    "nginx": Step("nginx with its Lua, njs and cache-purge modules (the balancers)",
                  ("nginx", "libnginx-mod-http-lua", "libnginx-mod-http-js", "libnginx-mod-http-cache-purge"),
                  ("nginx",), tuple(str(NGINX_MODULES / m) for m in (
                      "ngx_http_lua_module.so", "ngx_http_js_module.so", "ngx_http_cache_purge_module.so")),
                  service="nginx"),
    "wrk": Step("wrk (the benchmarks' load generator)", ("wrk",), ("wrk",)),
    "influxdb": Step("InfluxDB 1.x (k6's points: make influx, the dashboard test)", ("influxdb",), ("influxd",),
                     service="influxdb"),
    "chromium": Step("Chromium (the load report's test draws the page)", ("chromium",),
                     ("chromium", "chromium-browser")),
    "prometheus": Step("Prometheus (make prometheus, the services dashboard's test)", ("prometheus",),
                       ("prometheus",), service="prometheus"),
}
GROUPS = {
    "up": ("nginx",),
    "bench": ("nginx", "wrk"),
    "test": tuple(STEPS),  # the whole suite needs every one
    "all": tuple(STEPS),
}


def say(message: str):
    print(f"[atelier] {message}", flush=True)


def apt(*args, log):
    """apt-get quietly, its output appended to the log; SystemExit with one line on failure."""
    log.write(f"\n$ apt-get {' '.join(args)}\n")
    log.flush()
    result = subprocess.run(["apt-get", *args], stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if result.returncode != 0:
        raise SystemExit(f"[atelier] error: apt-get {args[0]} failed (exit {result.returncode}); "
                         f"its output is in {LOG.relative_to(ROOT)}")


def stop_service(name: str, log):
    """Debian starts the service it installs; stop it through its init script (by its own pid
    file, never by name: another copy may run on this machine for someone else)."""
    subprocess.run(["sh", "-c", f"service {name} stop || true"], stdout=log, stderr=subprocess.STDOUT)


def install(names) -> list:
    """Install the missing steps; returns the ones installed."""
    missing = [name for name in names if not STEPS[name].present()]
    if not missing:
        return []
    packages = [p for name in missing for p in STEPS[name].packages]
    if os.geteuid() != 0:
        raise SystemExit(f"[atelier] error: missing {', '.join(missing)}; as root run: apt-get update && "
                         f"apt-get install -y --no-install-recommends {' '.join(packages)}")
    if not shutil.which("apt-get"):
        raise SystemExit(f"[atelier] error: missing {', '.join(missing)}, and this is not a Debian or Ubuntu "
                         f"machine (no apt-get): install {' '.join(packages)} or their equivalents")
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(LOG, "a") as log:
        say(f"apt-get update (log: {LOG.relative_to(ROOT)})")
        apt("update", "-qq", log=log)
        for name in missing:
            step = STEPS[name]
            say(f"installing {step.what}")
            apt("install", "-y", "-qq", "--no-install-recommends", *step.packages, log=log)
            if step.service:
                stop_service(step.service, log)
            if not step.present():
                raise SystemExit(f"[atelier] error: {name} is still missing after installing "
                                 f"{' '.join(step.packages)}; see {LOG.relative_to(ROOT)}")
    return missing


def main(argv=None):
    wanted = (sys.argv[1:] if argv is None else argv) or ["all"]
    names = []
    for word in wanted:
        if word not in STEPS and word not in GROUPS:
            raise SystemExit(f"[atelier] error: unknown step {word!r}: one of {', '.join([*STEPS, *GROUPS])}")
        names += [n for n in GROUPS.get(word, (word,)) if n not in names]
    install(names)


if __name__ == "__main__":
    main()
