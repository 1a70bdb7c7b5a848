"""What runs after a load has swapped a service's new data in.

`data_replaced(service)` is called by `make load` (atelier_etl.load) once per service, right
after that service's swap committed. The balancers' caches need nothing here: the swap's own
transaction publishes `flush` to every balancer's cache listener (atelier_etl.swap). For
anything else that keeps a copy of the old data, an operator can set `ATELIER_AFTER_LOAD` to a
shell command, run with `ATELIER_SERVICE=<service>` in its environment; a failing command is
reported, the load stays done.
"""
import os
import subprocess
import sys


def data_replaced(service: str):
    command = os.environ.get("ATELIER_AFTER_LOAD")
    if not command:
        return
    result = subprocess.run(command, shell=True, env=dict(os.environ, ATELIER_SERVICE=service))
    if result.returncode != 0:
        print(f"{service}: ATELIER_AFTER_LOAD exited with {result.returncode} (the new data is loaded)",
              file=sys.stderr, flush=True)
