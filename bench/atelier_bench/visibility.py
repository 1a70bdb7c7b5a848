"""Write-to-visible delay at another balancer (atelier_bench.fleet, BALANCERS >= 2).

A shopper's `PUT …/helpful` is acknowledged by one instance-local balancer; the shopper's next
read may reach any other. This probe, run beside the benchmark's traffic, writes through
balancer A and polls the view the write changed through balancer B until the new count shows:
the delay from A's acknowledgement to the sending of the first read at B that shows it (reads
follow each other every 2 ms). It also counts the trials still stale `pause` (10 ms) after the
acknowledgement: what a browser's re-fetch through the other balancer would have met.
Writes: `PUT /qa/questions/:id/helpful` and `PUT /reviews/:id/helpful` on popular products
(each one's most helpful question or review, checked in the list sorted by that count), in turn.
"""
import json
import threading
import time
import urllib.request

POLL_SECONDS = 0.002
GIVE_UP_SECONDS = 5.0


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _put(url: str):
    request = urllib.request.Request(url, method="PUT", data=b"")
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status


class Target:
    """One countable thing: where to write it, where its count shows and how to read it. The
    view is sorted by that count, so the item stays in it while others are posted."""

    VIEWS = {"qa": ("/qa/questions?product_id={}&count=100", "/qa/questions/{}/helpful",
                    "question_id", "question_helpfulness"),
             "reviews": ("/reviews?product_id={}&count=100&sort=helpful", "/reviews/{}/helpful",
                         "review_id", "helpfulness")}

    def __init__(self, kind: str, product: int, item: int):
        view, write, self.id_key, self.count_key = self.VIEWS[kind]
        self.kind, self.product, self.item = kind, product, item
        self.view, self.write = view.format(product), write.format(item)

    @classmethod
    def most_helpful(cls, kind: str, product: int, base: str):
        """The target for the product's most helpful question or review (None without one)."""
        view, _, id_key, _ = cls.VIEWS[kind]
        rows = _get(base + view.format(product)).get("results", [])
        return cls(kind, product, rows[0][id_key]) if rows else None

    def count(self, base: str):
        for row in _get(base + self.view).get("results", []):
            if row.get(self.id_key) == self.item:
                return row.get(self.count_key)
        return None


class Probe(threading.Thread):
    """Runs until stop(): write through A, poll B; A and B swap each trial."""

    def __init__(self, balancers: dict, targets: list, pause: float = 0.010):
        super().__init__(daemon=True)
        self.balancers = balancers  # {"qa": [url_a, url_b], "reviews": [...]}
        self.targets = [t for t in targets if len(balancers.get(t.kind, [])) >= 2]
        self.pause = pause
        self.delays_ms, self.lost, self.errors = [], 0, 0
        self.running = True

    def run(self):
        trial = 0
        while self.running and self.targets:
            target = self.targets[trial % len(self.targets)]
            writer, reader = self.balancers[target.kind][trial % 2], self.balancers[target.kind][1 - trial % 2]
            trial += 1
            try:
                self._trial(target, writer, reader)
            except (OSError, ValueError):
                self.errors += 1
                time.sleep(0.1)

    def _trial(self, target: Target, writer: str, reader: str):
        before = target.count(writer)
        if before is None:
            self.targets.remove(target)
            return
        _put(writer + target.write)
        acknowledged = time.monotonic()
        while True:
            sent = time.monotonic()
            now = target.count(reader)
            if now is not None and now > before:
                # When the read that first showed it was sent: the write was visible by then.
                self.delays_ms.append((sent - acknowledged) * 1000)
                return
            if sent - acknowledged > GIVE_UP_SECONDS:
                self.lost += 1
                return
            time.sleep(POLL_SECONDS)

    def stop(self) -> dict:
        self.running = False
        self.join(GIVE_UP_SECONDS + 5)
        from atelier_bench.stats import percentile

        delays = self.delays_ms
        stale = sum(d > self.pause * 1000 for d in delays) + self.lost
        return {"trials": len(delays) + self.lost, "visible": len(delays), "not_visible_in_5s": self.lost,
                "stale_after_pause": stale, "pause_ms": round(self.pause * 1000),
                "errors": self.errors,
                "p50_ms": _round(percentile(delays, 0.5)), "p99_ms": _round(percentile(delays, 0.99)),
                "max_ms": _round(max(delays) if delays else None)}


def _round(value):
    return None if value is None else round(value, 1)
