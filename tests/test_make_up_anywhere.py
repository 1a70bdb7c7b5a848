"""`make up` works from any folder a user can write to, and says little.

A fresh clone of this repository's HEAD goes into a private (0700) folder, as root and as a normal
user; `make up` must start the stack (each service's /readyz answers), print a short report (no
traceback, no packaging warnings) and leave the user's folder as private as it was; `make down`
must stop it all, and (as root) `make clean` must remove the server's folder outside the clone.
`make test` runs one test needing its own PostgreSQL server there too.
As root the normal user is a throw-away system user created for the test.

Slow by nature (a venv per clone): pip installs from a wheelhouse of the pinned requirements
built once and kept in .data/wheelhouse, and the sample data is small.
"""
import contextlib
import hashlib
import os
import pwd
import random
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from atelier_common.fleet import MEMORY_FOLDER as MEMORY  # the balancers' cached answers

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0
SERVER_HOMES = Path(os.environ.get("ATELIER_SERVER_HOMES") or "/var/lib/atelier")
# This machine's pip configuration may name index folders that do not exist: pip's own notice
# about the machine, not output of the project.
MACHINE_NOTICE = re.compile(r"^WARNING: Location '.*' is ignored")
NOISE = re.compile(r"Traceback|BuildBackendWarning|absent from the `packages`|Editable installation|"
                   r"SetuptoolsDeprecationWarning|DEPRECATION", re.IGNORECASE)
MAX_LINES = 25  # what a person reads: what is installed, what started where, how to stop it


@pytest.fixture(scope="module")
def wheelhouse():
    """Every pinned requirement (and pip, setuptools) as wheels, so each clone's venv installs
    without an index. Kept between runs, keyed by the requirements files; readable by any user."""
    key = hashlib.sha256(b"".join(p.read_bytes() for p in sorted((ROOT / "requirements").glob("*")))).hexdigest()[:12]
    folder = ROOT / ".data" / "wheelhouse" / key
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(folder),
                        "-r", str(ROOT / "requirements" / "dev.txt"), "pip"], check=True, capture_output=True)
        (folder / ".complete").touch()
    # A copy in a folder of the test's own (the clone may sit in a private folder).
    shared = Path(tempfile.mkdtemp(prefix="atelier-wheels-"))
    shared.chmod(0o755)
    copy = shared / "wheels"
    shutil.copytree(folder, copy)
    for path in [copy, *copy.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield copy
    shutil.rmtree(shared)


def _free_port_base(count: int) -> int:
    """A base port such that base .. base+count-1 are free now (outside the ephemeral range)."""
    for _ in range(200):
        base = random.randrange(20000, 32000 - count)
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free ports")


def _ready(port: int, path: str = "/readyz") -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


@contextlib.contextmanager
def _throwaway_user():
    name = f"atelier-t{os.getpid()}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


def _make_up_and_down(user: str, wheelhouse: Path):
    """Clone into a private folder owned by `user`, then make up / readyz / make down (/ clean)."""
    account = pwd.getpwnam(user)
    private = Path(tempfile.mkdtemp(prefix="atelier-private-"))  # 0700
    clone = private / "atelier"
    base = _free_port_base(5)
    env = {key: value for key, value in os.environ.items()
           if not key.endswith("_DATABASE_URL") and key not in (
               "ATELIER_ROOT", "VIRTUAL_ENV", "PYTHONPATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    env.update(HOME=str(private), USER=user, LOGNAME=user, PATH="/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
               ATELIER_PORT_BASE=str(base), ATELIER_PG_PORT=str(base + 3), ATELIER_TEST_PG_PORT=str(base + 4),
               PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse), PIP_NO_COMPILE="1")
    run_as = None if account.pw_uid == os.geteuid() else user

    def make(*targets, timeout=150):
        return subprocess.run(["make", *targets], cwd=clone, env=env, user=run_as, timeout=timeout,
                              capture_output=True, text=True)

    try:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, capture_output=True)
        if run_as:
            subprocess.run(["chown", "-R", f"{user}:", str(private)], check=True)
        memory_before = set(MEMORY.glob("atelier-cache-*"))
        up = make("up", "SCALE=0.002")
        output = [line for line in (up.stdout + up.stderr).splitlines() if not MACHINE_NOTICE.match(line)]
        assert up.returncode == 0, "\n".join(output[-30:])
        assert [_ready(base + i) for i in range(3)] == [200, 200, 200]
        # A real read through each balancer: its Lua runs in nginx's workers, which (as root)
        # run as nobody and cannot read the private clone.
        reads = ["/products/1", "/qa/questions?product_id=1", "/reviews/meta?product_id=1"]
        assert [_ready(base + i, path) for i, path in enumerate(reads)] == [200, 200, 200]
        # The layout changes both ways (from 2 balancers to 1, the single balancer takes the ports
        # of the first of two), reads answering after each.
        for balancers in ("2", "1"):
            again = make("up", "SCALE=0.002", f"BALANCERS={balancers}")
            assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
            assert [_ready(base + i, path) for i, path in enumerate(reads)] == [200, 200, 200]
        noisy = [line for line in output if NOISE.search(line)]
        assert noisy == [], noisy
        assert len(output) <= MAX_LINES, "\n".join(output)
        assert "make down" in output[-1]
        assert stat.S_IMODE(private.stat().st_mode) == 0o700, "make up loosened the user's folder"
        server_data = (clone / ".data" / "pg").resolve()
        if account.pw_uid == 0:
            assert server_data.is_relative_to(SERVER_HOMES), server_data
        else:
            assert server_data.is_relative_to(clone)
            assert server_data.stat().st_uid == account.pw_uid  # the server runs as that user

        # `make test` too: its PostgreSQL server (.data/pg-test) goes where make up's went.
        tested = make("test", "TESTS=common/tests/test_plumbing.py -k health_and_readiness", timeout=120)
        assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
        assert (server_data.parent / "pg-test" / "PG_VERSION").exists()

        down = make("down", timeout=60)
        assert down.returncode == 0, down.stdout + down.stderr
        assert [_ready(base + i) for i in range(3)] == [0, 0, 0]
        leftovers = subprocess.run(["pgrep", "-f", f"postgres -D {server_data}$|--pid {clone}/.data/run/"],
                                   capture_output=True, text=True)
        assert leftovers.stdout == "", "make down left processes behind"
        assert set(MEMORY.glob("atelier-cache-*")) == memory_before, "make down left cached answers in memory"
        clean = make("clean", timeout=60)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert not server_data.exists()
    finally:
        # Whatever failed: nothing left running, no server folder left in /var/lib/atelier.
        subprocess.run(["make", "clean"], cwd=clone, env=env, user=run_as, capture_output=True, timeout=60)
        shutil.rmtree(private, ignore_errors=True)


@pytest.mark.skipif(not IS_ROOT, reason="runs as root: PostgreSQL then runs as a system user outside the clone")
def test_make_up_as_root_in_a_private_folder(wheelhouse):
    _make_up_and_down("root", wheelhouse)


def test_make_up_as_a_normal_user_in_a_private_folder(wheelhouse):
    if not IS_ROOT:  # this user is the normal user
        _make_up_and_down(pwd.getpwuid(os.geteuid()).pw_name, wheelhouse)
        return
    with _throwaway_user() as user:
        _make_up_and_down(user, wheelhouse)


def test_a_taken_postgres_port_stops_make_up_with_one_clear_line(tmp_path):
    """What cannot work says so in one line naming the fix, never with a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {key: value for key, value in os.environ.items() if not key.endswith("_DATABASE_URL")}
        env.update(ATELIER_ROOT=str(tmp_path), ATELIER_PG_PORT=str(port))
        stack = [sys.executable, str(ROOT / "tools" / "stack.py")]
        try:
            up = subprocess.run([*stack, "up"], env=env, capture_output=True, text=True, timeout=120)
        finally:
            subprocess.run([*stack, "clean"], env=env, capture_output=True, timeout=60)
    output = (up.stdout + up.stderr).strip().splitlines()
    assert up.returncode == 1
    assert "Traceback" not in up.stdout + up.stderr
    assert output[-1].startswith(f"[atelier] error: PostgreSQL did not start on port {port} "
                                 "(ATELIER_PG_PORT moves it)"), output[-1]
