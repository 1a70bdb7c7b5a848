"""`make influx`: a local InfluxDB 1.x (Debian's `influxd`) for k6's results, data under .data/.

start: writes .data/influx/influxdb.conf, starts influxd with its pid file in .data/run/ (so
`make down` stops it with the rest), waits until /ping answers; starting it twice starts
nothing twice. stop: stops the one this folder started. The HTTP port is INFLUX_PORT (8086);
the RPC port INFLUX_RPC_PORT (default INFLUX_PORT + 2), so two can run side by side.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from string import Template

from atelier_common.fleet import pid_alive, stop_pid
from atelier_common.localpg import DATA

CONFIG = Path(__file__).with_name("influxdb.conf")


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as response:
            return response.status == 204
    except OSError:
        return False


def start(port: int, rpc_port: int, data: Path, pidfile: Path) -> int:
    """Start influxd unless the pid file names a live one; return its pid once /ping answers."""
    pid = pid_alive(pidfile)
    if pid:
        print(f"[influx] already running (pid {pid}) on http://127.0.0.1:{port}")
        return pid
    influxd = shutil.which("influxd")
    if not influxd:
        sys.exit("influxd not found (Debian's InfluxDB 1.x): `make install` installs it (as root)")
    data.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    config = data / "influxdb.conf"
    config.write_text(Template(CONFIG.read_text()).substitute(port=port, rpc_port=rpc_port, data=data))
    with open(data / "influxd.log", "ab") as log:
        process = subprocess.Popen([influxd, "run", "-config", str(config), "-pidfile", str(pidfile)],
                                   stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    deadline = time.monotonic() + 30
    while not answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            sys.exit(f"influxd did not start; see {data / 'influxd.log'}")
        time.sleep(0.2)
    print(f"[influx] started (pid {process.pid}) on http://127.0.0.1:{port}, data in {data}")
    return process.pid


def stop(pidfile: Path):
    pid = pid_alive(pidfile)
    if stop_pid(pidfile):
        print(f"[influx] stopped (pid {pid})")


def main():
    port = int(os.environ.get("INFLUX_PORT", "8086"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--rpc-port", type=int, default=int(os.environ.get("INFLUX_RPC_PORT", port + 2)))
    parser.add_argument("--data", type=Path, default=DATA / "influx")
    parser.add_argument("--pidfile", type=Path, default=DATA / "run" / "influxdb.pid")
    args = parser.parse_args()
    if args.command == "start":
        start(args.port, args.rpc_port, args.data.resolve(), args.pidfile.resolve())
    else:
        stop(args.pidfile.resolve())


if __name__ == "__main__":
    main()
