"""The balancers' cached answers in memory, as `make up` keeps them: on the machine's tmpfs when
it has room, given back with the balancer; and a running balancer whose cache moves folder
(which nginx refuses on a reload) is restarted on its new configuration, never left on the old."""
import os
from pathlib import Path

import pytest

from atelier_common import fleet as fleet_tools

pytestmark = pytest.mark.skipif(not fleet_tools.memory_cache_available(),
                                reason=f"no memory-backed folder with room here ({fleet_tools.MEMORY_FOLDER})")

LIST = "/products?page=1&count=5"


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding path (the longest mount point above it)."""
    mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    path = str(path.resolve())
    found = max((m for m in mounts if path == m[0] or path.startswith(m[0].rstrip("/") + "/")),
                key=lambda m: len(m[0]))
    return found[1]


def cached_files(folder: Path) -> list:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_the_cache_lives_in_memory_and_is_given_back(start_fleet):
    fleet = start_fleet("products", instances=1)
    balancer = fleet.add_balancer(memory_cache=True)
    folder = fleet_tools.memory_cache_dir(balancer.prefix)
    assert f"proxy_cache_path {folder}/cache " in (balancer.prefix / "nginx.conf").read_text()
    assert filesystem_of(folder) == "tmpfs"

    assert balancer.get(LIST).headers["X-Cache-Status"] == "MISS"
    assert balancer.get(LIST).headers["X-Cache-Status"] == "HIT"
    assert len(cached_files(folder / "cache")) == 1
    assert not (balancer.prefix / "cache").exists() or not cached_files(balancer.prefix / "cache")

    fleet_tools.stop_pid(balancer.pidfile, seconds=10)
    fleet_tools.remove_memory_cache(balancer.prefix)
    assert not folder.exists()


def test_a_cache_that_moves_restarts_the_balancer_on_its_new_configuration(start_fleet):
    fleet = start_fleet("products", instances=1)
    balancer = fleet.add_balancer()  # on the disk, in its prefix
    assert balancer.get(LIST).headers["X-Cache-Status"] == "MISS"
    old_master = fleet_tools.pid_alive(balancer.pidfile)

    conf, changed = fleet_tools.render_balancer(
        "products", f"127.0.0.1:{balancer.port}", [f"127.0.0.1:{p}" for p in fleet.ports], balancer.prefix,
        balancer.pidfile, cache=1, write_rate_limit=0, extra=["--access-log", str(balancer.access_log)],
        memory_cache=True)
    assert changed
    # nginx refuses this reload (the zone's folder changed) and would keep its old workers.
    assert fleet_tools.start_balancer(fleet_tools.nginx_binary(), conf, balancer.pidfile) == "restarted"
    assert fleet_tools.pid_alive(balancer.pidfile) not in (None, old_master)
    assert balancer.get(LIST).headers["X-Cache-Status"] == "MISS"
    assert balancer.get(LIST).headers["X-Cache-Status"] == "HIT"
    assert len(cached_files(fleet_tools.memory_cache_dir(balancer.prefix) / "cache")) == 1
    assert os.path.exists(balancer.prefix / "nginx.conf")
