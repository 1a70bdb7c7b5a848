"""A balancer that cannot start says why in one line, and what a failed start leaves behind
(its control socket) does not stop the next start."""
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from atelier_common import fleet as fleet_tools
from atelier_common.localpg import DATA


@pytest.fixture
def prefix():
    if not fleet_tools.nginx_binary():
        pytest.fail(f"nginx with its Lua module is missing; as root: {fleet_tools.install_command()}")
    (DATA / "test-fleets").mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="start-", dir=DATA / "test-fleets"))
    folder.chmod(0o755)
    yield folder
    fleet_tools.stop_pid(folder / "nginx.pid", seconds=10)
    shutil.rmtree(folder, ignore_errors=True)


def render(prefix: Path, port: int) -> Path:
    conf, _ = fleet_tools.render_balancer("products", f"127.0.0.1:{port}", [f"127.0.0.1:{fleet_tools.free_port()}"],
                                          prefix, prefix / "nginx.pid", cache=1, write_rate_limit=0)
    return conf


def test_a_taken_port_is_one_line_naming_it_and_the_next_start_works(prefix):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    conf = render(prefix, port)
    with pytest.raises(fleet_tools.FleetError) as failed:
        fleet_tools.start_balancer(fleet_tools.nginx_binary(), conf, prefix / "nginx.pid")
    message = str(failed.value)
    assert "\n" not in message
    assert f"port {port} is taken" in message and "Address already in use" in message
    assert fleet_tools.pid_alive(prefix / "nginx.pid") is None
    assert fleet_tools.control_socket(prefix).is_socket()  # left behind by the failed start

    taken.close()
    assert fleet_tools.start_balancer(fleet_tools.nginx_binary(), conf, prefix / "nginx.pid") == "started"
    assert fleet_tools.pid_alive(prefix / "nginx.pid")
    assert fleet_tools.flush_balancer(prefix)  # the control socket is the new nginx's


def test_a_stale_socket_is_removed_and_a_live_one_kept(prefix):
    stale = prefix / "stale.sock"
    with socket.socket(socket.AF_UNIX) as left:
        left.bind(str(stale))  # bound, never listening, then closed: what a failed nginx leaves
    assert stale.is_socket()
    assert fleet_tools.remove_stale_socket(stale) and not stale.exists()

    live = prefix / "live.sock"
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(live))
        listening.listen()
        assert not fleet_tools.remove_stale_socket(live) and live.is_socket()
