"""A full disk, for real: a small tmpfs the test mounts (as root; skipped otherwise).

- The database's volume: the question table moved to a tablespace on a 1 MB tmpfs, the rest of
  it filled. A write that needs a new page fails in PostgreSQL ("could not extend file": No
  space left on device, SQLSTATE 53100): the shopper gets 503 + Retry-After, nothing is half
  written, reads keep answering; with space again, writes work at once, and every acknowledged
  write is there.
- The balancer's volume (cache, logs, temp files): nginx drops the connection of a cache miss
  whose cache file it cannot write, so each worker watches the volume (lua/atelier_disk.lua) and
  stops storing reads below 1 MB free. On a full tmpfs every read is answered from the instances
  and writes pass; with space again, the cache fills again."""
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from atelier_common import fleet as fleet_tools
from atelier_common.localpg import wait_for
from atelier_common.testing import answers

if os.geteuid() != 0:
    pytest.skip("the full-disk tests mount a small tmpfs: run them as root", allow_module_level=True)

QUESTION = {"body": "Is it warm?", "name": "n", "email": "n@example.com", "product_id": 4}


class SmallDisk:
    """A tmpfs of `size` at a fresh folder, and a filler file that takes all its free space."""

    def __init__(self, size: str, owner: str = None):
        self.path = Path(tempfile.mkdtemp(prefix="atelier-small-disk-"))
        options = f"size={size},mode=0777"
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.path)], check=True)
        if owner:
            shutil.chown(self.path, owner, owner)
        self.filler = self.path / "filler"

    def fill(self):
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (65536, 4096, 512, 1):
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError:
                    pass
        finally:
            os.close(fd)
        assert shutil.disk_usage(self.path).free < 8192

    def free(self):
        self.filler.unlink(missing_ok=True)

    def remove(self):
        subprocess.run(["umount", "-l", str(self.path)], check=False)
        shutil.rmtree(self.path, ignore_errors=True)


@pytest.fixture
def full_database_volume(chaos_pg, chaos_db):
    disk = SmallDisk("1m", owner=chaos_pg.run_as)
    tablespace = disk.path / "pg"
    tablespace.mkdir()
    shutil.chown(tablespace, chaos_pg.run_as, chaos_pg.run_as)
    # Moved, then rewritten compactly: the free space that earlier tests' updates left in its
    # pages would take hundreds of rows before a new page is needed.
    chaos_db.admin(f"CREATE TABLESPACE chaos_small LOCATION '{tablespace}'",
                   "ALTER TABLE question SET TABLESPACE chaos_small", "VACUUM FULL question")
    try:
        yield disk
    finally:
        disk.free()
        chaos_db.admin("ALTER TABLE question SET TABLESPACE pg_default")
        chaos_db.admin("DROP TABLESPACE chaos_small")
        disk.remove()


def test_a_full_database_volume_refuses_writes_with_503_and_recovers(chaos_db, chaos_fleet, full_database_volume):
    before = chaos_db.value("SELECT count(*) FROM question")
    full_database_volume.fill()
    created, refused, started = [], [], time.monotonic()
    for _ in range(400):  # the last page's free space takes a few rows first
        t = time.monotonic()
        response = requests.post(chaos_fleet.base + "/qa/questions", json=QUESTION, timeout=10)
        if response.status_code == 201:
            created.append(response.headers["Location"])
        else:
            refused.append((response, time.monotonic() - t))
            if len(refused) >= 5:
                break
    assert refused, f"{len(created)} questions fitted on a full disk"
    statuses = {response.status_code for response, _ in refused}
    print(f"\nfull database volume: {len(created)} questions fitted, then {len(refused)} POSTs "
          f"{statuses} in at most {max(s for _, s in refused):.2f} s each")
    assert statuses == {503} and all(r.headers["Retry-After"] == "1" for r, _ in refused)
    assert all(r.json() == {"message": "service temporarily unavailable, retry later"} for r, _ in refused)
    assert max(seconds for _, seconds in refused) < 1
    read = requests.get(chaos_fleet.base + "/qa/questions?product_id=4", timeout=10)
    assert read.status_code == 200  # reads go on
    assert chaos_db.value("SELECT count(*) FROM question") == before + len(created)  # nothing half-written

    full_database_volume.free()
    recovered = requests.post(chaos_fleet.base + "/qa/questions", json=QUESTION, timeout=10)
    print(f"space back: the next POST {recovered.status_code} after {time.monotonic() - started:.1f} s in all")
    assert recovered.status_code == 201
    created.append(recovered.headers["Location"])
    ids = [int(location.rsplit("/", 1)[1]) for location in created]
    assert chaos_db.value("SELECT count(*) FROM question WHERE id = ANY(%s)", (ids,)) == len(ids)


@pytest.fixture
def balancer_on_small_disk(chaos_fleet):
    disk = SmallDisk("2m")
    prefix = disk.path / "nginx"
    pidfile = disk.path / "nginx.pid"
    port = fleet_tools.free_port()
    conf, _ = fleet_tools.render_balancer(
        "qa", f"127.0.0.1:{port}", [f"127.0.0.1:{p}" for p in chaos_fleet.ports], prefix, pidfile,
        cache=1, write_rate_limit=0)
    fleet_tools.start_balancer(fleet_tools.nginx_binary(), conf, pidfile)
    # Its cache listener (outside the small volume): mutable views are cached only while one
    # vouches for the balancer's versions (infra/nginx/README.md).
    listener_files = Path(tempfile.mkdtemp(prefix="atelier-listener-"))
    listener_pid = listener_files / "listener.pid"
    base = f"http://127.0.0.1:{port}"
    try:
        fleet_tools.start_listener("qa", prefix, chaos_fleet.database_url, listener_pid,
                                   listener_files / "listener.log")
        wait_for(lambda: answers(base + "/healthz"), 10, "balancer on a small disk")
        yield base, disk
    finally:
        fleet_tools.stop_pid(listener_pid, seconds=10)
        shutil.rmtree(listener_files, ignore_errors=True)
        fleet_tools.stop_pid(pidfile, seconds=10)
        log = prefix / "error.log"
        print("balancer error log (last lines):\n" + "\n".join(log.read_text().splitlines()[-5:]))
        disk.remove()


def test_a_full_balancer_volume_still_answers_every_request(chaos_db, balancer_on_small_disk):
    base, disk = balancer_on_small_disk
    disk.fill()
    time.sleep(1.5)  # each nginx worker looks at its volume once a second (lua/atelier_disk.lua)
    statuses, slowest = [], 0.0
    for product in range(1, 41):
        t = time.monotonic()
        response = requests.get(f"{base}/qa/questions?product_id={product}&count=5", timeout=10)
        slowest = max(slowest, time.monotonic() - t)
        statuses.append((response.status_code, response.headers.get("X-Cache-Status")))
        assert response.status_code == 200 and response.json()["product_id"] == str(product)
    posted = requests.post(base + "/qa/questions", json=QUESTION, timeout=10)
    print(f"\nfull balancer volume: 40 reads {sorted(set(statuses))}, slowest {slowest * 1000:.0f} ms; "
          f"POST {posted.status_code}")
    assert posted.status_code == 201
    question_id = int(posted.headers["Location"].rsplit("/", 1)[1])
    assert chaos_db.value("SELECT count(*) FROM question WHERE id = %s", (question_id,)) == 1
    assert slowest < 1

    disk.free()
    time.sleep(1.5)
    first = requests.get(f"{base}/qa/questions?product_id=3&count=4", timeout=10)
    again = requests.get(f"{base}/qa/questions?product_id=3&count=4", timeout=10)
    assert first.status_code == again.status_code == 200
    assert again.headers["X-Cache-Status"] == "HIT"  # with space again, the cache stores again
