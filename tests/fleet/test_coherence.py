"""One coherent cache across several balancers (infra/nginx/README.md, "Caching"): two balancers
rendered from the same template, each with its cache listener, behind a round-robin front that
stands in for the AWS load balancer. A write acknowledged through the front shows in every view
it changed on whichever balancer the next read reaches; a listener killed, or PostgreSQL
restarted, never lets a balancer serve what it can no longer vouch for; the cache key is the
view's normalised parameters."""
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from atelier_common.localpg import wait_for

QUESTION = {"body": "Does it run small?", "name": "shopper", "email": "shopper@example.com"}
ANSWER = {"body": "It runs true to size.", "name": "owner", "email": "owner@example.com"}
REVIEW_TEXT = "Lovely shades, they fit well and look great in the sun all day long."
PAUSE = 0.010  # between the acknowledgement and the re-fetch (quicker than any browser's round trip)
REFETCHES = 2000


def pair(start_fleet, service):
    fleet = start_fleet(service, instances=2)
    fleet.a, fleet.b = fleet.add_balancer(), fleet.add_balancer()
    fleet.front = fleet.add_front([fleet.a, fleet.b])
    return fleet


@pytest.fixture(scope="module")
def qa(start_fleet):
    return pair(start_fleet, "qa")


@pytest.fixture(scope="module")
def reviews(start_fleet):
    fleet = pair(start_fleet, "reviews")
    fleet.fit = {}
    return fleet


def created_id(response) -> int:
    assert response.status_code == 201, response.text
    return int(response.headers["Location"].rsplit("/", 1)[1])


def qa_writes(qa, product, session):
    """(name, write, views it changes), one of each kind of qa write, on fresh rows."""
    post = lambda path, body: session.post(qa.front.base + path, json=body, timeout=15)  # noqa: E731
    question = created_id(post("/qa/questions", {**QUESTION, "product_id": product}))
    answer = created_id(post(f"/qa/questions/{question}/answers", ANSWER))
    listing, answers = f"/qa/questions?product_id={product}&count=100", f"/qa/questions/{question}/answers?count=100"
    put = lambda path: lambda: session.put(qa.front.base + path, timeout=15)  # noqa: E731
    return [
        ("POST question", lambda: post("/qa/questions", {**QUESTION, "product_id": product}), [listing]),
        ("POST answer", lambda: post(f"/qa/questions/{question}/answers", ANSWER), [listing, answers]),
        ("PUT question helpful", put(f"/qa/questions/{question}/helpful"), [listing]),
        ("PUT answer helpful", put(f"/qa/answers/{answer}/helpful"), [listing, answers]),
        ("PUT answer report", put(f"/qa/answers/{answer}/report"), [listing, answers]),
        ("PUT question report", put(f"/qa/questions/{question}/report"), [listing]),
    ]


def reviews_writes(reviews, product, session):
    if product not in reviews.fit:
        reviews.fit[product] = reviews.value(
            "INSERT INTO characteristic (product_id, name) VALUES (%s, 'Fit') RETURNING id", (product,))
    body = {"product_id": product, "rating": 4, "summary": "Great", "body": REVIEW_TEXT, "recommend": True,
            "name": "jackson11", "email": "jackson11@example.com", "photos": [],
            "characteristics": {str(reviews.fit[product]): 4}}
    post = lambda: session.post(reviews.front.base + "/reviews", json=body, timeout=15)  # noqa: E731
    review = created_id(post())
    listing, meta = f"/reviews?product_id={product}&count=100&sort=helpful", f"/reviews/meta?product_id={product}"
    put = lambda path: lambda: session.put(reviews.front.base + path, timeout=15)  # noqa: E731
    return [
        ("POST review", post, [listing, meta]),
        ("PUT review helpful", put(f"/reviews/{review}/helpful"), [listing]),
        ("PUT review report", put(f"/reviews/{review}/report"), [listing, meta]),
    ]


def write_then_refetch(fleet, writes_of, product, refetches: int, pause: float) -> dict:
    """Rounds of: every view cached on both balancers, one write through the front, `pause`,
    then every view it changed re-fetched through the front. Returns counts and the stale
    re-fetches (view, what was shown, what the database says)."""
    session = requests.Session()
    result = {"refetches": 0, "stale": [], "kinds": {}, "hits_before": 0}
    while result["refetches"] < refetches:
        for name, write, views in writes_of(fleet, product, session):
            for view in views:  # cached on both balancers (the write must make them miss)
                for balancer in (fleet.a, fleet.b):
                    balancer.session.get(balancer.base + view, timeout=15)
                    result["hits_before"] += balancer.session.get(
                        balancer.base + view, timeout=15).headers.get("X-Cache-Status") == "HIT"
            before = {view: fleet.direct(0, view).json() for view in views}
            answer = write()
            assert answer.status_code in (201, 204), (name, answer.status_code, answer.text)
            if pause:
                time.sleep(pause)
            shown = {view: session.get(fleet.front.base + view, timeout=15).json() for view in views}
            changed = 0
            for view in views:
                now = fleet.direct(0, view).json()
                changed += now != before[view]
                if shown[view] != now:
                    result["stale"].append((name, view))
                result["refetches"] += 1
            assert changed, f"{name} changed none of {views}"
            result["kinds"][name] = result["kinds"].get(name, 0) + len(views)
    return result


def test_every_write_through_the_front_shows_10_ms_later_wherever_the_refetch_lands(qa, reviews):
    """2,000 re-fetches, each sent 10 ms after its write's acknowledgement through the front,
    every kind of write: none is stale. Then the same with the re-fetch sent at once (reported)."""
    jobs = [(qa, qa_writes, 9500 + i, REFETCHES * 6 // 10 // 2) for i in range(2)]
    jobs += [(reviews, reviews_writes, 9600 + i, REFETCHES * 4 // 10 // 2) for i in range(2)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda job: write_then_refetch(*job, PAUSE), jobs))
    total = sum(r["refetches"] for r in results)
    stale = [s for r in results for s in r["stale"]]
    kinds = {}
    for r in results:
        for name, count in r["kinds"].items():
            kinds[name] = kinds.get(name, 0) + count
    print(f"\n{total} re-fetches {PAUSE * 1000:.0f} ms after the acknowledgement: {len(stale)} stale; by write: {kinds}")
    assert total >= REFETCHES and len(kinds) == 9
    assert sum(r["hits_before"] for r in results) > total  # the views were cached before each write
    assert not stale, stale[:10]

    # Sent at once, the re-fetch may beat the notification to the other balancer: how often.
    jobs = [(qa, qa_writes, 9700, 200), (reviews, reviews_writes, 9800, 200)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda job: write_then_refetch(*job, 0), jobs))
    print(f"{sum(r['refetches'] for r in results)} re-fetches sent at once: "
          f"{sum(len(r['stale']) for r in results)} stale")


def test_the_other_balancer_is_bumped_within_milliseconds(qa):
    """Writes through A; B's version of the product, read on its control socket in a tight loop
    from the acknowledgement on, changes within a few milliseconds (printed: p50, p99, max)."""
    product = 9900
    question = created_id(qa.a.post("/qa/questions", json={**QUESTION, "product_id": product}))
    delays = []
    for _ in range(200):
        before = qa.b.state(f"product:{product}")["versions"][f"product:{product}"]
        assert qa.a.put(f"/qa/questions/{question}/helpful").status_code == 204
        acknowledged = time.monotonic()
        while qa.b.state(f"product:{product}")["versions"][f"product:{product}"] == before:
            assert time.monotonic() - acknowledged < 1, "the other balancer was not bumped within 1 s"
        delays.append(time.monotonic() - acknowledged)
    delays.sort()
    print(f"\nother balancer bumped after the acknowledgement: p50 {delays[100] * 1000:.2f} ms, "
          f"p99 {delays[198] * 1000:.2f} ms, max {delays[-1] * 1000:.2f} ms (200 writes)")


def warm(balancer, views):
    for view in views:
        wait_for(lambda: balancer.get(view).status_code == 200, 5, f"{view} answers")
        assert balancer.get(view).headers["X-Cache-Status"] == "HIT", view


def test_a_killed_listener_gives_no_stale_read(qa):
    product = 9910
    question = created_id(qa.front.post("/qa/questions", json={**QUESTION, "product_id": product}))
    view = f"/qa/questions?product_id={product}"
    warm(qa.b, [view])
    qa.b.kill_listener()
    # At once (the session's socket closed with the process): B no longer caches mutable views.
    assert qa.b.state()["vouched_for"] == 0
    for expected in (1, 2, 3):
        assert qa.a.put(f"/qa/questions/{question}/helpful").status_code == 204
        shown = qa.b.get(view)
        assert shown.headers["X-Cache-Status"] == "BYPASS"
        assert shown.json()["results"][0]["question_helpfulness"] == expected
    epoch = qa.b.state()["mutable"]
    qa.b.start_listener()
    assert qa.b.state()["mutable"] > epoch  # vouched again, under a new epoch
    warm(qa.b, [view])
    assert qa.a.put(f"/qa/questions/{question}/helpful").status_code == 204
    time.sleep(PAUSE)
    assert qa.b.get(view).json()["results"][0]["question_helpfulness"] == 4


def test_postgresql_restarted_gives_no_stale_read(qa, reviews, postgres):
    """The listeners lose their connection: their balancers stop caching mutable views at once,
    and start again (new epoch) once they LISTEN again; a write after the restart shows."""
    product = 9920
    question = created_id(qa.front.post("/qa/questions", json={**QUESTION, "product_id": product}))
    view = f"/qa/questions?product_id={product}"
    warm(qa.a, [view])
    warm(qa.b, [view])
    epochs = {b: b.state()["mutable"] for b in (qa.a, qa.b)}
    postgres.stop()
    try:
        for balancer in (qa.a, qa.b):
            wait_for(lambda: balancer.state()["vouched_for"] == 0, 2, "the balancer stops vouching")
    finally:
        postgres.start()
    for balancer in (qa.a, qa.b):
        wait_for(lambda: balancer.state()["vouched_for"] > 0, 15, "the listener back")
        assert balancer.state()["mutable"] >= epochs[balancer] + 2
    for balancer in (reviews.a, reviews.b):  # (for the next tests)
        wait_for(lambda: balancer.state()["vouched_for"] > 0, 15, "the listener back")
    wait_for(lambda: qa.front.put(f"/qa/questions/{question}/helpful").status_code == 204, 15, "writes again")
    time.sleep(PAUSE)
    for balancer in (qa.a, qa.b):
        for _ in range(2):  # (an instance's pool may still answer 503 once)
            answer = balancer.get(view)
            if answer.status_code == 200:
                break
        assert answer.json()["results"][0]["question_helpfulness"] == 1


def test_a_reader_never_sees_a_count_go_back(qa):
    """Readers polling the balancer that learns of the writes only through its listener: once
    one has seen a count, it never sees a smaller one. (Through the front, a reader may meet the
    writing balancer, bumped before the acknowledgement, then the other one in the millisecond
    before its notification arrives: counted and printed, not a guarantee.)"""
    product = 9930
    question = created_id(qa.front.post("/qa/questions", json={**QUESTION, "product_id": product}))
    view = f"/qa/questions?product_id={product}"
    stop = threading.Event()
    backwards = {qa.b.base: [], qa.front.base: []}
    reads = {qa.b.base: 0, qa.front.base: 0}

    def reader(base):
        session, seen = requests.Session(), 0
        while not stop.is_set():
            count = session.get(base + view, timeout=15).json()["results"][0]["question_helpfulness"]
            reads[base] += 1
            if count < seen:
                backwards[base].append((seen, count))
            seen = max(seen, count)

    with ThreadPoolExecutor(5) as pool:
        readers = [pool.submit(reader, base) for base in (qa.b.base, qa.b.base, qa.front.base, qa.front.base)]
        session = requests.Session()
        for _ in range(100):
            assert session.put(f"{qa.a.base}/qa/questions/{question}/helpful", timeout=15).status_code == 204
            time.sleep(0.02)
        stop.set()
        for future in readers:
            future.result()
    print(f"\nreaders of the other balancer: {reads[qa.b.base]} reads, {len(backwards[qa.b.base])} went back; "
          f"through the front: {reads[qa.front.base]} reads, {len(backwards[qa.front.base])} went back")
    assert reads[qa.b.base] > 100
    assert not backwards[qa.b.base], backwards[qa.b.base][:5]


def test_junk_repeated_and_reordered_parameters_hit_the_same_entry(qa, reviews):
    product = 9940
    qa.front.post("/qa/questions", json={**QUESTION, "product_id": product})
    base = f"/qa/questions?product_id={product}&page=1&count=5"
    assert qa.a.get(base).headers["X-Cache-Status"] == "MISS"
    junk20 = "&".join(f"utm_{i}=x" for i in range(20))
    junk300 = "&".join(f"j{i}={i}" for i in range(300))
    variants = [
        f"/qa/questions?count=5&product_id={product}",
        f"/qa/questions/?product_id={product}",
        f"/qa/questions?product_id={product}&junk=1&page=1",
        f"/qa/questions?product_id=000{product}&count=05",
        f"/qa/questions?product_id={product}&product_id=1&count=5&count=7",
        f"/qa/questions?{junk20}&product_id={product}",
        f"/qa/questions?{junk300}&product_id={product}",
        f"/qa/questions?product%5Fid={product}",
    ]
    for variant in variants:
        answer = qa.a.get(variant)
        assert answer.headers["X-Cache-Status"] == "HIT", variant
        assert answer.json() == qa.direct(0, variant).json(), variant
    # count is clamped as the service clamps it; junk on a page of reviews; sort aliases.
    assert qa.a.get(f"/qa/questions?product_id={product}&count=1000").headers["X-Cache-Status"] == "MISS"
    assert qa.a.get(f"/qa/questions?product_id={product}&count=999999").headers["X-Cache-Status"] == "HIT"
    warm(reviews.a, [f"/reviews?product_id={product}&sort=helpful"])
    for variant in (f"/reviews?sort=helpfulness&product_id={product}&x=1", f"/reviews/?product_id={product}&sort=helpful&count=5"):
        assert reviews.a.get(variant).headers["X-Cache-Status"] == "HIT", variant
    # What the service rejects (422) is not cached, nor is anything this balancer cannot read
    # exactly as the service does.
    for rejected in (f"/qa/questions?product_id={product}&count=0", "/qa/questions?product_id=abc",
                     "/qa/questions?product_id", f"/qa/questions?product_id=+{product}",
                     f"/qa/questions?product_id={product}&page=2147483648"):
        answer = qa.a.get(rejected)
        assert answer.status_code == 422 and answer.headers["X-Cache-Status"] == "BYPASS", rejected
    for unread in (f"/qa//questions?product_id={product}", f"/qa/questions%2F?product_id={product}"):
        assert qa.a.get(unread, allow_redirects=False).headers["X-Cache-Status"] == "BYPASS", unread


def test_tricky_query_strings_get_what_the_service_answers(qa):
    """Whatever the cache answers for a query string is what an instance answers for it."""
    product = 9950
    for _ in range(3):
        qa.front.post("/qa/questions", json={**QUESTION, "product_id": product})
    tricky = ["product_id=%d&page=2&count=1", "product_id=%d;count=1", "product_id=%d&count=1;x",
              "product_id=%d&page=%%32&count=1", "product_id=%d&count=1&count=", "product_id=%d&&count=2",
              "count=1&product_id=%d#frag", "product_id=%d&count=+1", "product_id=%d&count=1%%00",
              "product_id=%d&PAGE=2&count=1", "product_id=%d&page=02&count=0001"]
    for query in tricky:
        path = "/qa/questions?" + query % product
        for _ in range(2):
            answer = qa.a.get(path)
            assert answer.text == qa.direct(0, path).text, (path, answer.headers.get("X-Cache-Status"))


def test_a_client_over_its_fill_budget_is_served_but_stores_nothing(start_fleet):
    fleet = start_fleet("qa", instances=1)
    balancer = fleet.add_balancer(fill_budget="4k")
    for product in range(9960, 9990):
        balancer.post("/qa/questions", json={**QUESTION, "product_id": product})
    stored = 0
    for product in range(9960, 9990):
        view = f"/qa/questions?product_id={product}"
        assert balancer.get(view).status_code == 200
        stored += balancer.get(view).headers["X-Cache-Status"] == "HIT"
    assert 0 < stored < 30  # ~4 KB of ~300-byte answers, then nothing more


def test_a_hundred_thousand_new_versions_do_not_empty_the_cache(qa):
    """Minting versions (writes to products that do not exist) fills the version store, which
    holds them (each expires), instead of starting a new epoch that would empty every cache."""
    view = "/qa/questions?product_id=9995"
    qa.front.post("/qa/questions", json={**QUESTION, "product_id": 9995})
    warm(qa.a, [view])
    epoch = qa.a.state()
    for start in range(0, 100_000, 2000):  # as many writes would, a few thousand at a time
        names = " ".join(f"product:{2_000_000 + i}" for i in range(start, start + 2000)).encode()
        assert qa.a.control("POST", "/bump", names)[0] == 200
    after = qa.a.state("product:2099999")
    assert after["versions"]["product:2099999"].split("=")[1] != "0/0"
    assert (after["epoch"], after["mutable"]) == (epoch["epoch"], epoch["mutable"])
    assert qa.a.get(view).headers["X-Cache-Status"] == "HIT"


def test_versions_expire_without_resurrecting_an_older_entry(start_fleet):
    """A version expires only once every entry cached under the one before it is dead: with
    1 s views (and a 1 s upstream timeout) a version lives 6 s; then the key reads as before
    the write again, and must not find the entry cached before the write."""
    fleet = start_fleet("qa", instances=1)
    balancer = fleet.add_balancer(view_lifetime=1, upstream_timeout="1s")
    product = 9996
    question = created_id(balancer.post("/qa/questions", json={**QUESTION, "product_id": product}))
    view = f"/qa/questions?product_id={product}"
    warm(balancer, [view])  # cached under the version the write will replace
    assert balancer.put(f"/qa/questions/{question}/helpful").status_code == 204
    assert balancer.get(view).json()["results"][0]["question_helpfulness"] == 1
    wait_for(lambda: balancer.state(f"product:{product}")["versions"][f"product:{product}"].startswith(
        f"product:{product}=0/"), 10, "the version expired")
    shown = balancer.get(view)
    assert shown.json()["results"][0]["question_helpfulness"] == 1, shown.headers.get("X-Cache-Status")


def test_only_the_user_who_started_nginx_can_use_the_control_socket(qa):
    folder = qa.a.prefix / "control"
    assert folder.stat().st_mode & 0o777 == 0o700 and folder.stat().st_uid == os.geteuid()
    if os.geteuid() != 0:
        return  # another user cannot be tried without root; the folder's mode above says it
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    sys.exit(3)\n")
    result = subprocess.run(["runuser", "-u", "nobody", "--", "python3", "-c", probe, str(folder / "control.sock")],
                            capture_output=True, text=True)
    assert result.returncode == 3, (result.returncode, result.stderr)
    # ... while its owner can.
    assert qa.a.state()["vouched_for"] > 0
