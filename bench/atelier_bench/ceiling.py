"""The hit ratio no cache could beat on the benchmark's own requests: its ceiling.

A page-load mix has reads that no cache can answer: the first read of each view since the caches
were flushed, and the first read after a write changed it. `Ceiling` replays the request files a
run played (the first `page_loads` of each, in order) through perfect caches: unbounded, never
expiring, invalidated exactly by each write (a write on product p's questions or reviews changes
the views of p that the service shows), one cache per instance-local balancer, the front
sending each service's requests round robin. The measured hit ratio against this ceiling says
how much the cache itself loses (locks, lifetimes, evictions); the ceiling itself says how much
of the traffic is new to the caches, which depends on the traffic and its history, not on them.

Each service is replayed alone: a write only changes views of its own service, and the
request file orders a page load's requests of one service as the generator sends them.
"""
import re
from pathlib import Path

from atelier_common.localpg import SERVICES

PRODUCT_ID = re.compile(r"[?&]product_id=(\d+)")


class Ceiling:
    """Perfect caches for one BALANCERS layout, from a flush on; `replay` feeds them a run."""

    def __init__(self, balancers: int):
        self.balancers = max(1, balancers)
        self.cached = {s: [set() for _ in range(self.balancers)] for s in SERVICES}
        self.by_product = {s: {} for s in SERVICES}  # product id -> {(balancer, key)} of its views
        self.turn = {s: 0 for s in SERVICES}

    def replay(self, folder: Path, page_loads: int) -> float:
        """The share of the run's reads that were already cached (0..1): the run's ceiling."""
        hits = reads = 0
        for service in SERVICES:
            for lines in _pages(Path(folder) / f"{service}.txt", page_loads):
                product = _page_product(lines)
                for method, path in lines:
                    if method != "GET":
                        self._invalidate(service, product)
                        continue
                    balancer = self.turn[service] % self.balancers
                    self.turn[service] += 1
                    reads += 1
                    if path in self.cached[service][balancer]:
                        hits += 1
                        continue
                    self.cached[service][balancer].add(path)
                    subject = PRODUCT_ID.search(path)
                    if subject and service != "products":
                        self.by_product[service].setdefault(subject.group(1), set()).add((balancer, path))
        return hits / reads if reads else 0.0

    def _invalidate(self, service: str, product):
        for balancer, path in self.by_product[service].pop(product, ()):
            self.cached[service][balancer].discard(path)


def _pages(path: Path, page_loads: int):
    """Each page load's (method, path) lines of one request file, the first page_loads of them."""
    current, lines = None, []
    with path.open() as handle:
        for line in handle:
            page, method, target, _body = line.rstrip("\n").split("\t", 3)
            page = int(page)
            if page >= page_loads:
                break
            if page != current and lines:
                yield lines
                lines = []
            current = page
            lines.append((method, target))
    if lines:
        yield lines


def _page_product(lines):
    """The product a page load shows, as its list names it (qa: its questions; reviews: its
    reviews; the meta reads also name the related products). None for products (no writes)."""
    for method, target in lines:
        if method == "GET" and not target.startswith("/reviews/meta"):
            found = PRODUCT_ID.search(target)
            if found:
                return found.group(1)
    return None
