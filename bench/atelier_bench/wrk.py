"""The one wrk runner of the benchmarks: wrk with a Lua script of lua/, its output parsed.

`run` starts wrk and returns its output and the CPU seconds it used (the load generator's own
cost, for the CPU-by-tier tables); `endpoint` replays one endpoint with ids drawn from a range
(lua/endpoint.lua) and returns req/s, p50, p99 and non-2xx answers.
"""
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

LUA = Path(__file__).resolve().parent / "lua"


def require():
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: `make install` installs it (as root)")


def run(url: str, script: Path, seconds: int, connections: int, threads: int = 1, env=None,
        latency: bool = False, timeout: str = None):
    """(wrk's output, its CPU seconds); SystemExit with the output's tail when wrk fails."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script)]
    command += ["--latency"] if latency else []
    command += ["--timeout", timeout] if timeout else []
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen([*command, url], stdout=out, stderr=subprocess.STDOUT,
                                   env=dict(os.environ, **(env or {})))
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if process.returncode != 0:
        raise SystemExit(f"wrk failed:\n{text[-2000:]}")
    return text, usage.ru_utime + usage.ru_stime


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def summary(text: str) -> dict:
    """req/s, p50 and p99 (ms), non-2xx answers and socket errors of wrk --latency's output."""
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
            "p50": _ms(re.search(r"\s50%\s+(\S+)", text).group(1)),
            "p99": _ms(re.search(r"\s99%\s+(\S+)", text).group(1)),
            "non2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(1) if errors else ""}


def endpoint(base: str, path: str, ids, seconds: int, connections: int, seed: int,
             method: str = "GET", body: str = None) -> dict:
    """One endpoint under wrk -t1: path (and body) with "{id}" drawn uniformly from ids (low, high)."""
    text, cpu = run(base, LUA / "endpoint.lua", seconds, connections, latency=True, env={
        "BENCH_SEED": str(seed), "BENCH_LOW": str(ids[0]), "BENCH_HIGH": str(ids[1]),
        "BENCH_METHOD": method, "BENCH_PATH": path, "BENCH_BODY": body or ""})
    return {**summary(text), "loadgen_cpu_s": cpu}
