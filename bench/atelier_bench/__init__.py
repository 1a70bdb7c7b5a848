"""The Atelier benchmarks and the soak (development tools: nothing a service runs imports them).

    python -m atelier_bench.service products   # make bench SERVICE=products: pgbench + wrk per endpoint
    python -m atelier_bench.fleet              # make bench-fleet: the page-load mix through the balancers
    python -m atelier_bench.tail               # make bench-tail: each read endpoint's tail
    python -m atelier_bench.metrics            # make bench-metrics: what /metrics costs
    python -m atelier_bench.soak               # make soak: 10 minutes of page loads and writes

A service's endpoints for `make bench` are described in services/<name>/bench.py with
`Endpoint` (below).
"""
from atelier_bench.endpoint import Endpoint

__all__ = ["Endpoint"]
