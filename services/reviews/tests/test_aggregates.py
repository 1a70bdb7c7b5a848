"""The per-product aggregates behind /reviews/meta stay equal to a from-scratch recomputation
(plain avg()/count() over the base tables) after any sequence of writes, sequential or
concurrent."""
import json
import random
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

PRODUCTS = (800, 801, 802)  # 802 has no characteristics


@pytest.fixture(scope="module")
def catalogue(db):
    """{product_id: [characteristic ids]}"""
    ids = {}
    with db.cursor() as cur:
        for product_id, names in ((800, ("Fit", "Length", "Comfort", "Quality")), (801, ("Size", "Width"))):
            for name in names:
                cur.execute("INSERT INTO characteristic (product_id, name) VALUES (%s, %s) RETURNING id",
                            (product_id, name))
                ids.setdefault(product_id, []).append(cur.fetchone()[0])
    ids[802] = []
    return ids


def new_review(product_id, rating, recommend, characteristic_ratings):
    return {"product_id": product_id, "rating": rating, "summary": "s", "body": "b" * 50,
            "recommend": recommend, "name": "n", "email": "n@example.com",
            "characteristics": {str(k): v for k, v in characteristic_ratings.items()}}


posts = st.builds(
    lambda product, rating, recommend, values, keep: ("post", product, rating, recommend, values, keep),
    st.sampled_from(PRODUCTS), st.integers(1, 5), st.booleans(),
    st.lists(st.integers(1, 5), min_size=4, max_size=4), st.lists(st.booleans(), min_size=4, max_size=4))
reports = st.builds(lambda which: ("report", which), st.integers(0, 10_000))
operations = st.lists(st.one_of(posts, reports, reports), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations)
def test_meta_equals_recomputation_after_any_posts_and_reports(app, db, helpers, catalogue, operations):
    client = app.test_client()
    posted = []
    for operation in operations:
        if operation[0] == "post":
            _, product, rating, recommend, values, keep = operation
            ratings = {cid: value for cid, value, kept in zip(catalogue[product], values, keep) if kept}
            response = client.post("/reviews", json=new_review(product, rating, recommend, ratings))
            assert response.status_code == 201
            posted.append(int(response.headers["Location"].rsplit("/", 1)[1]))
        elif posted:  # report a review posted in this example (possibly again)
            assert client.put(f"/reviews/{posted[operation[1] % len(posted)]}/report").status_code == 204
    assert helpers.served_meta(db, PRODUCTS) == helpers.recompute_meta(db, PRODUCTS)
    for product in PRODUCTS:  # and what the endpoint answers is that very document
        assert client.get(f"/reviews/meta?product_id={product}").get_json() == \
            helpers.recompute_meta(db, [product])[product]


def test_concurrent_posts_reports_and_helpfuls_under_gunicorn_stay_exact(serve, database_url, db, helpers,
                                                                         catalogue):
    base = serve("reviews", database_url, DB_POOL_MAX=8)
    rng = random.Random(5)

    def call(method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.headers.get("Location")
        except urllib.error.HTTPError as error:
            return error.code, None

    # a first wave of posts gives the reports something to hit; then posts, reports (each
    # review reported by several threads at once) and helpfuls all race
    seeded = []
    with ThreadPoolExecutor(16) as pool:
        for status, location in pool.map(lambda i: call("POST", "/reviews", new_review(
                PRODUCTS[i % 2], 1 + i % 5, i % 3 == 0,
                {cid: 1 + (i + n) % 5 for n, cid in enumerate(catalogue[PRODUCTS[i % 2]])})), range(40)):
            assert status == 201
            seeded.append(int(location.rsplit("/", 1)[1]))
    to_report = rng.sample(seeded, 20)
    helpful_target = seeded[0]
    jobs = ([("POST", "/reviews", new_review(rng.choice(PRODUCTS), rng.randint(1, 5), rng.random() < 0.5,
                                             {cid: rng.randint(1, 5) for cid in catalogue[800][:3]}))
             for _ in range(30)]
            + [("PUT", f"/reviews/{review_id}/report", None) for review_id in to_report for _ in range(3)]
            + [("PUT", f"/reviews/{helpful_target}/helpful", None) for _ in range(40)])
    # catalogue[800] ids are only valid for product 800: the others must be refused whole
    rng.shuffle(jobs)
    barrier = threading.Barrier(16)

    def run(job):
        try:
            barrier.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass
        return job, call(*job)[0]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(run, jobs))
    for (method, _path, body), status in results:
        if method == "PUT":
            assert status == 204
        else:
            assert status == (201 if body["product_id"] == 800 else 422)
    assert helpers.served_meta(db, PRODUCTS) == helpers.recompute_meta(db, PRODUCTS)
    with db.cursor() as cur:
        cur.execute("SELECT helpfulness FROM review WHERE id = %s", (helpful_target,))
        assert cur.fetchone()[0] == 40
        cur.execute("SELECT count(*) FROM review WHERE id = ANY(%s) AND reported", (to_report,))
        assert cur.fetchone()[0] == 20
