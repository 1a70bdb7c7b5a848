"""A service's fleet on one machine: gunicorn instances on private ports behind nginx balancers
(rendered by infra/nginx/render.py), each with its cache listener, and a front when there are
several balancers. Used by `make up` (tools/stack.py) and by the fleet tests, which start their
own fleets on free ports.

Every process is started as a daemon that writes its pid file; stopping is by pid file only.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .localpg import DATA, ROOT, wait_for

RENDER = ROOT / "infra" / "nginx" / "render.py"
NGINX_MODULES = Path("/usr/lib/nginx/modules")
VENV_BIN = Path(sys.executable).parent
SERVICES = 3

# The default layout, derived from the cores of the machine it runs on (bench/README.md, "The
# default layout"). One single-worker instance keeps a core busy (a gevent worker is CPU-bound;
# its database waits overlap inside it), and a second process of the same tier on the same cores
# finds no idle CPU: it only adds context switches and colder caches (measured on 2 cores: the
# instances' CPU per request +15% to +31% from one instance per service to two; twice as much on
# another machine of the same kind). In the page-load mix the instances use about half the
# machine's CPU and nginx about a quarter, so per service: instances = its share of the cores the
# instances use, nginx workers likewise.
INSTANCE_SHARE = 0.5
NGINX_SHARE = 0.25


def default_instances(cores: int = None) -> int:
    """Single-worker instances per service for a machine of `cores` cores (this one's by default):
    at least 1; 1 up to 8 cores, 2 at 12, 5 at 32."""
    cores = cores or os.cpu_count() or 1
    return max(1, round(cores * INSTANCE_SHARE / SERVICES))


def default_nginx_workers(cores: int = None) -> int:
    """nginx worker processes per balancer (NGINX_WORKERS unset): at least 1; 1 up to 16 cores."""
    cores = cores or os.cpu_count() or 1
    return max(1, round(cores * NGINX_SHARE / SERVICES))
LISTENER_NICE = -10


def nginx_binary():
    """The nginx executable with the Lua module next to it, or None."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found and (NGINX_MODULES / "ngx_http_lua_module.so").exists():
        return found
    return None


def install_command() -> str:
    """What installs nginx with its modules (tools/install.py holds the package names)."""
    return "make install"


def pid_alive(pidfile: Path):
    try:
        pid = int(Path(pidfile).read_text().strip())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None


def ready(url: str) -> bool:
    """True when url answers 200 (within 2 s)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def port_taken(port: int) -> bool:
    """Something listens on 127.0.0.1:port. (SO_REUSEADDR, as gunicorn and nginx bind: connections
    of a stopped server still in TIME_WAIT do not count.)"""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_instance(service: str, port: int, database_url: str, pidfile: Path, logfile: Path, app: str = None,
                   **env):
    """One gunicorn master (and its workers) on 127.0.0.1:port, daemonized, pid in pidfile: the one
    way the project starts gunicorn (`make up`, the tests, the benchmarks). `app`: another WSGI
    app than the service's (a test's own module)."""
    environment = dict(os.environ, **{f"{service.upper()}_DATABASE_URL": database_url,
                                      "PROC_NAME": f"atelier-{service}-{port}"},
                       **{key: str(value) for key, value in env.items()})
    # An instance is the unit of scaling: one worker each unless WEB_CONCURRENCY says otherwise.
    environment.setdefault("WEB_CONCURRENCY", "1")
    # A second listener for /metrics alone (METRICS_LISTEN), when asked for.
    metrics = ["--bind", environment["METRICS_LISTEN"]] if environment.get("METRICS_LISTEN") else []
    subprocess.run([
        str(VENV_BIN / "gunicorn"), "-c", "python:atelier_common.gunicorn_conf",
        "--bind", f"127.0.0.1:{port}", *metrics, "--daemon", "--pid", str(pidfile),
        "--error-logfile", str(logfile), app or f"{service}:create_app()",
    ], check=True, env=environment, cwd=ROOT)


# The machine's memory-backed filesystem, where `make up` keeps the balancers' cached answers
# when it has room: a miss stores its answer as a new file (create, write, rename; the cache
# manager deletes old ones), which costs nginx about half its CPU per miss on ext4 and far less
# on tmpfs (infra/nginx/README.md, "Caching"). Room: twice the largest cache's max_size
# (render.py CACHE_POLICY, products 4g); past that the disk guard stops storing (lua/atelier_disk.lua).
MEMORY_FOLDER = Path("/dev/shm")
MEMORY_CACHE_ROOM = 8 * 1024 ** 3


def memory_cache_dir(prefix: Path) -> Path:
    """The memory-backed folder of the balancer at prefix (one per prefix, so per clone too)."""
    digest = hashlib.sha256(str(Path(prefix).resolve()).encode()).hexdigest()[:12]
    return MEMORY_FOLDER / f"atelier-cache-{digest}"


def remove_memory_cache(prefix: Path):
    """Give a stopped balancer's memory-backed cache back (its entries die with its versions)."""
    shutil.rmtree(memory_cache_dir(prefix), ignore_errors=True)


def memory_cache_available() -> bool:
    """Whether the machine has a memory-backed folder with room for a balancer's cache."""
    try:
        usage = shutil.disk_usage(MEMORY_FOLDER)
    except OSError:
        return False
    return os.access(MEMORY_FOLDER, os.W_OK) and usage.free >= MEMORY_CACHE_ROOM


def render_balancer(service: str, listen: str, upstreams, prefix: Path, pidfile: Path,
                    cache: int = 1, write_rate_limit: int = 10, extra=(), front: bool = False,
                    read_rate_limit: int = 0, connection_limit: int = 0, memory_cache: bool = False):
    """Write the balancer's (or with front=True the front's) nginx.conf under prefix (created):
    (its path, whether it changed). The per-client read rate and connection limits are off
    unless asked for (on one machine every test, load test and benchmark client comes from one
    address). memory_cache: the cached answers in a memory-backed folder when the machine has
    room for them (else, and by default, PREFIX/cache)."""
    prefix = Path(prefix).resolve()
    prefix.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        _reachable_by_workers(prefix)
    args = [sys.executable, str(RENDER), "--service", service, "--listen", listen,
            "--prefix", str(prefix), "--pid", str(pidfile),
            "--workers", os.environ.get("NGINX_WORKERS") or str(default_nginx_workers()), *extra]
    if memory_cache and cache and not front:
        folder = memory_cache_dir(prefix)
        if folder.exists() or memory_cache_available():
            folder.mkdir(mode=0o755, exist_ok=True)  # nginx makes its `cache` inside, owned by its workers
            args += ["--cache-dir", str(folder / "cache")]
    args += ["--front"] if front else ["--cache", str(cache), "--write-rate-limit", str(write_rate_limit),
                                       "--read-rate-limit", str(read_rate_limit),
                                       "--connection-limit", str(connection_limit)]
    for upstream in upstreams:
        args += ["--upstream", upstream]
    config = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    path = prefix / "nginx.conf"
    changed = not path.exists() or path.read_text() != config
    if changed:
        path.write_text(config)
    return path, changed


def _reachable_by_workers(prefix: Path):
    """Started as root, nginx runs its workers as `nobody`, and they write the cache and temp
    files under the prefix: every folder above it must let others through (as localpg does for
    the PostgreSQL server's user)."""
    for folder in reversed(prefix.parents):
        mode = folder.stat().st_mode
        if mode & 0o001 != 0o001:
            folder.chmod(mode | 0o001)


class FleetError(RuntimeError):
    """A process of the fleet cannot start; the message is one line that says why."""


def _nginx_says(stderr: str) -> str:
    """nginx's own reason, one line: its first [emerg] (or last) message without the prefix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    chosen = next((line for line in lines if "[emerg]" in line), lines[-1] if lines else "no message")
    return re.sub(r"^nginx: \[\w+\] ", "", chosen)


def nginx_check(binary: str, conf: Path):
    result = subprocess.run([binary, "-t", "-q", "-p", str(conf.parent), "-c", str(conf)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise FleetError(f"nginx rejects {conf}: {_nginx_says(result.stderr)}")


def remove_stale_socket(path: Path) -> bool:
    """A Unix socket file that no process listens on (left by an nginx that failed to start or
    was killed) would make the next nginx fail to bind it: remove it. A live one stays."""
    path = Path(path)
    if not path.is_socket():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        try:
            sock.connect(str(path))
            return False  # someone listens: not ours to remove
        except ConnectionRefusedError:
            path.unlink(missing_ok=True)
            return True
        except OSError:
            return False


def start_balancer(binary: str, conf: Path, pidfile: Path, drain_seconds: float = 10):
    """Start nginx (it daemonizes; the master writes pidfile), or reload it when it runs
    ("started", "reloaded", or "restarted" when nginx refused the reload: see below).
    A reload returns once the workers of the old configuration have finished their requests
    (at most drain_seconds): an instance the new configuration left out can then be stopped
    with nothing on its way to it."""
    nginx_check(binary, conf)
    pid = pid_alive(pidfile)
    if not pid:  # a control socket left by an nginx that was killed would block its successor
        control_socket(conf.parent).unlink(missing_ok=True)
    if pid:
        old_workers = _children(pid)
        os.kill(pid, signal.SIGHUP)  # re-reads the configuration; cache and versions are kept
        # nginx refuses some changes on a reload that `nginx -t` accepts (a cache zone moved to
        # another folder): it logs why and keeps its old workers. Then it is stopped and started.
        deadline = time.monotonic() + 5
        while not _children(pid) - old_workers and time.monotonic() < deadline:
            time.sleep(0.05)
        if _children(pid) - old_workers:
            deadline = time.monotonic() + drain_seconds
            while any(_running(worker) for worker in old_workers) and time.monotonic() < deadline:
                time.sleep(0.05)
            return "reloaded"
        stop_pid(pidfile)
        start_balancer(binary, conf, pidfile, drain_seconds)
        return "restarted"
    for unix_socket in conf.parent.glob("*.sock"):
        remove_stale_socket(unix_socket)
    result = subprocess.run([binary, "-p", str(conf.parent), "-c", str(conf)], capture_output=True, text=True)
    if result.returncode != 0:
        reason = _nginx_says(result.stderr)
        taken = re.search(r"bind\(\) to [\d.]+:(\d+) failed \(98", reason)
        hint = (f": port {taken.group(1)} is taken by another program (ATELIER_PORT_BASE moves the ports)"
                if taken else "")
        raise FleetError(f"nginx did not start ({conf}): {reason}{hint}")
    wait_for(lambda: pid_alive(pidfile) is not None, 10, f"nginx {conf}")
    return "started"


def stop_pids(pidfiles, seconds: float = 30) -> list:
    """SIGTERM every live process of `pidfiles` at once (gunicorn: graceful; nginx: fast), then
    SIGKILL what is left after `seconds`. Returns the pid files whose process was stopped."""
    signalled = {}
    for pidfile in pidfiles:
        pid = pid_alive(pidfile)
        if pid is None:
            Path(pidfile).unlink(missing_ok=True)
            continue
        os.kill(pid, signal.SIGTERM)
        signalled[pid] = Path(pidfile)
    deadline = time.monotonic() + seconds
    waiting = set(signalled)
    while waiting and time.monotonic() < deadline:
        waiting = {pid for pid in waiting if _running(pid)}
        if waiting:
            time.sleep(0.05)
    for pid in waiting:
        os.kill(pid, signal.SIGKILL)
    for pidfile in signalled.values():
        pidfile.unlink(missing_ok=True)
    return list(signalled.values())


def stop_pid(pidfile: Path, seconds: float = 30) -> bool:
    return bool(stop_pids([pidfile], seconds))


def _children(pid: int) -> set:
    """The pids whose parent is pid (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A daemon's parent is init, which reaps it; a child of ours would linger as a zombie.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def control_socket(prefix: Path) -> Path:
    """The balancer's control socket (infra/nginx/conf/control.conf)."""
    return Path(prefix) / "control" / "control.sock"


def control_request(prefix: Path, method: str, path: str, body: bytes = b""):
    """One request on the balancer's control socket: (status, body), or None when no balancer
    listens there."""
    socket_path = control_socket(prefix)
    if not socket_path.exists():
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        try:
            sock.connect(str(socket_path))
        except OSError:
            return None  # a socket left by a balancer that is gone
        sock.sendall(f"{method} {path} HTTP/1.0\r\nHost: control\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                     + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, content = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), content


def flush_balancer(prefix: Path) -> bool:
    """POST /flush on the balancer's control socket: every cached view becomes unreachable
    (a load does this itself, through the listeners: this is for an operator)."""
    answer = control_request(prefix, "POST", "/flush")
    return answer is not None and answer[0] == 200


def balancer_state(prefix: Path, keys=()) -> dict:
    """GET /state: epoch, versions of `keys`, how long the listener still vouches for."""
    answer = control_request(prefix, "GET", "/state?keys=" + ",".join(keys))
    return json.loads(answer[1]) if answer and answer[0] == 200 else None


def start_listener(service: str, prefix: Path, database_url: str, pidfile: Path, logfile: Path, wait=True):
    """The balancer's cache listener (atelier_common.cache_listener), daemonized, pid in pidfile;
    with wait, returns once the balancer reports it vouched for (so mutable views are cached)."""
    environment = dict(os.environ, **{f"{service.upper()}_DATABASE_URL": database_url})
    # Ahead of the busy processes in the run queue (root only; on AWS the unit's Nice= does it):
    # a notification then reaches the balancer within a millisecond or two even at saturation.
    nice = ["nice", "-n", str(LISTENER_NICE)] if os.geteuid() == 0 else []
    subprocess.run([*nice, str(VENV_BIN / "python"), "-m", "atelier_common.cache_listener", "--service", service,
                    "--control", f"unix:{control_socket(prefix)}", "--daemon", "--pidfile", str(pidfile),
                    "--log", str(logfile)], check=True, env=environment, cwd=ROOT)
    if wait:
        wait_vouched(prefix, logfile)


def wait_vouched(prefix: Path, logfile: Path):
    wait_for(lambda: (balancer_state(prefix) or {}).get("vouched_for", 0) > 0, 15,
             f"the cache listener of {prefix} (log {logfile})")


def instance_addresses(service: str, run: Path = DATA / "run", metrics: bool = False) -> list:
    """host:port of every live gunicorn master of the service whose pid file is in `run`
    (`<service>.pid` or `<service>-<i>.pid`, as `make up` writes them). An instance listens twice
    when it has a metrics listener (METRICS_LISTEN): with metrics, only the addresses whose
    /metrics answers (the public one's is 404)."""
    import psutil

    addresses = []
    for pidfile in sorted([*run.glob(f"{service}.pid"), *run.glob(f"{service}-*.pid")]):
        try:
            master = psutil.Process(int(pidfile.read_text().strip()))
            listening = [c.laddr for c in master.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
        except (ValueError, psutil.Error):
            continue
        addresses += [f"{address.ip}:{address.port}" for address in listening]
    return [address for address in addresses if serves_metrics(address)] if metrics else addresses


def serves_metrics(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
