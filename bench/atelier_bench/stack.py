"""The local stack `make up` runs (tools/stack.py), as the benchmarks and the soak see it."""
import json
import subprocess
import sys

from atelier_common.localpg import ROOT

STACK = ROOT / "tools" / "stack.py"


def run(*args) -> str:
    """`tools/stack.py args...`; its standard output."""
    return subprocess.run([sys.executable, str(STACK), *args], check=True, cwd=ROOT,
                          capture_output=True, text=True).stdout


def status() -> dict:
    """pids and URLs of what runs: {"urls": {service: url}, "balancers": {...}, "instances": {...}, ...}."""
    return json.loads(run("status", "--json"))
