"""The balancer's cache never shows a writer stale data (infra/nginx/README.md, "Caching").

Each test warms every cached view of a product (the second read must be a cache HIT), writes
through the same balancer, and reads every view again at once: each must equal what an instance
answers straight from the database. Mutable views live for minutes, so only the version scheme,
not the passing of time, can refresh them. Several balancers behind a front: test_coherence.py."""
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from atelier_common.cache_listener import FLUSH_SQL
from atelier_common.localpg import wait_for

QUESTION = {"body": "Does it run small?", "name": "shopper", "email": "shopper@example.com"}
ANSWER = {"body": "It runs true to size.", "name": "owner", "email": "owner@example.com"}
REVIEW_TEXT = "Lovely shades, they fit well and look great in the sun all day long."


def created_id(response) -> int:
    assert response.status_code == 201, response.text
    assert "X-Invalidates" not in response.headers  # internal: the balancer drops it
    return int(response.headers["Location"].rsplit("/", 1)[1])


def warm(balancer, views):
    for view in views:
        assert balancer.get(view).status_code == 200
    for view in views:
        response = balancer.get(view)
        assert response.headers["X-Cache-Status"] == "HIT", view


def assert_fresh(fleet, balancer, views, before: dict):
    """Every view through the balancer equals the database's answer; and the write did change
    some of them (else the test would prove nothing)."""
    changed = 0
    for view in views:
        now = fleet.direct(0, view).json()
        assert balancer.get(view).json() == now, view
        changed += now != before[view]
    assert changed > 0


def snapshot(fleet, views) -> dict:
    return {view: fleet.direct(0, view).json() for view in views}


@pytest.fixture(scope="module")
def qa(start_fleet):
    fleet = start_fleet("qa", instances=2)
    fleet.balancer = fleet.add_balancer()
    return fleet


@pytest.fixture(scope="module")
def reviews(start_fleet):
    fleet = start_fleet("reviews", instances=2)
    fleet.balancer = fleet.add_balancer()
    return fleet


def qa_views(product, questions):
    lists = [f"/qa/questions?product_id={product}", f"/qa/questions?product_id={product}&count=2",
             f"/qa/questions?product_id={product}&page=2&count=2", f"/qa/questions/?product_id={product}&count=100"]
    for question in questions:
        lists += [f"/qa/questions/{question}/answers", f"/qa/questions/{question}/answers?count=1",
                  f"/qa/questions/{question}/answers?page=2&count=1"]
    return lists


def seed_qa(balancer, product):
    questions = [created_id(balancer.post("/qa/questions", json={**QUESTION, "product_id": product}))
                 for _ in range(3)]
    answers = {q: [created_id(balancer.post(f"/qa/questions/{q}/answers", json=ANSWER)) for _ in range(2)]
               for q in questions}
    return questions, answers


@pytest.mark.parametrize("write", ["question helpful", "answer helpful", "new answer", "new question",
                                   "answer report", "question report"])
def test_qa_write_then_every_cached_view_of_the_product_shows_it(qa, write):
    product = 9000 + ["question helpful", "answer helpful", "new answer", "new question",
                      "answer report", "question report"].index(write)
    questions, answers = seed_qa(qa.balancer, product)
    views = qa_views(product, questions)
    warm(qa.balancer, views)
    before = snapshot(qa, views)
    question, answer = questions[-1], answers[questions[-1]][-1]
    response = {
        "question helpful": lambda: qa.balancer.put(f"/qa/questions/{question}/helpful"),
        "answer helpful": lambda: qa.balancer.put(f"/qa/answers/{answer}/helpful"),
        "new answer": lambda: qa.balancer.post(f"/qa/questions/{question}/answers", json=ANSWER),
        "new question": lambda: qa.balancer.post("/qa/questions", json={**QUESTION, "product_id": product}),
        "answer report": lambda: qa.balancer.put(f"/qa/answers/{answer}/report"),
        "question report": lambda: qa.balancer.put(f"/qa/questions/{question}/report"),
    }[write]()
    assert response.status_code in (201, 204)
    assert "X-Invalidates" not in response.headers
    assert_fresh(qa, qa.balancer, views, before)


def test_helpful_count_shows_at_once_in_questions_and_answers(qa):
    """The front-end's own sequence: PUT helpful, then re-fetch the list and show the count."""
    product = 9100
    questions, answers = seed_qa(qa.balancer, product)
    listing, answers_view = f"/qa/questions?product_id={product}", f"/qa/questions/{questions[0]}/answers"
    warm(qa.balancer, [listing, answers_view])
    for expected in (1, 2, 3):
        assert qa.balancer.put(f"/qa/questions/{questions[0]}/helpful").status_code == 204
        assert qa.balancer.put(f"/qa/answers/{answers[questions[0]][0]}/helpful").status_code == 204
        shown = {q["question_id"]: q for q in qa.balancer.get(listing).json()["results"]}
        assert shown[questions[0]]["question_helpfulness"] == expected
        assert shown[questions[0]]["answers"][str(answers[questions[0]][0])]["helpfulness"] == expected
        listed = {a["answer_id"]: a["helpfulness"] for a in qa.balancer.get(answers_view).json()["results"]}
        assert listed[answers[questions[0]][0]] == expected


def reviews_views(product):
    views = [f"/reviews/meta?product_id={product}", f"/reviews/meta/?product_id={product}"]
    for sort in ("relevant", "helpful", "newest", "relevance", "helpfulness", "newness"):
        views += [f"/reviews?product_id={product}&sort={sort}", f"/reviews?product_id={product}&sort={sort}&count=1",
                  f"/reviews?product_id={product}&sort={sort}&page=2&count=1"]
    return views + [f"/reviews?product_id={product}", f"/reviews/?product_id={product}&count=100"]


def seed_reviews(fleet, product):
    fit = fleet.value("INSERT INTO characteristic (product_id, name) VALUES (%s, 'Fit') RETURNING id",
                         (product,))

    def post(rating):
        return created_id(fleet.balancer.post("/reviews", json={
            "product_id": product, "rating": rating, "summary": "Great", "body": REVIEW_TEXT,
            "recommend": rating > 2, "name": "jackson11", "email": "jackson11@example.com",
            "photos": [], "characteristics": {str(fit): rating}}))

    return [post(rating) for rating in (5, 3, 1)], post


@pytest.mark.parametrize("write", ["review helpful", "new review", "review report"])
def test_reviews_write_then_every_list_and_meta_show_it(reviews, write):
    product = 9200 + ["review helpful", "new review", "review report"].index(write)
    review_ids, post = seed_reviews(reviews, product)
    views = reviews_views(product)
    warm(reviews.balancer, views)
    before = snapshot(reviews, views)
    if write == "review helpful":
        assert reviews.balancer.put(f"/reviews/{review_ids[-1]}/helpful").status_code == 204
    elif write == "new review":
        post(4)
    else:
        assert reviews.balancer.put(f"/reviews/{review_ids[0]}/report").status_code == 204
    assert_fresh(reviews, reviews.balancer, views, before)
    if write != "review helpful":  # a new or reported review changes the meta's counts
        meta = f"/reviews/meta?product_id={product}"
        assert reviews.balancer.get(meta).json() != before[meta]


def test_readers_never_wait_on_the_cache_lock(qa):
    """Readers hammering one view while writes keep changing it: each write makes the view miss
    on every reader at once; the first fills it, the others go to an instance themselves (nginx's
    cache lock would make them wait, and it re-checks only every 500 ms), so no read takes 0.45 s."""
    balancer = qa.balancer
    product = 9350
    questions, _ = seed_qa(balancer, product)
    view = f"/qa/questions?product_id={product}&count=3"
    seconds = 3.0
    deadline = time.monotonic() + seconds

    def read_until_deadline():
        session = requests.Session()
        while time.monotonic() < deadline:
            assert session.get(balancer.base + view, timeout=15).status_code == 200

    def write_until_deadline():
        session = requests.Session()
        while time.monotonic() < deadline:
            assert session.put(f"{balancer.base}/qa/questions/{questions[0]}/helpful", timeout=15).status_code == 204
            time.sleep(0.1)

    with ThreadPoolExecutor(7) as pool:
        futures = [pool.submit(read_until_deadline) for _ in range(6)] + [pool.submit(write_until_deadline)]
        for future in futures:
            future.result()
    time.sleep(1.2)  # the access log is flushed every second
    lines = [line for line in balancer.access_log.read_text().splitlines() if f'GET {view} ' in line]
    hits = [line for line in lines if " cache=HIT " in line]
    slowest = max(float(re.search(r" rt=([0-9.]+) ", line)[1]) for line in lines)
    assert len(lines) > 100 and len(hits) > len(lines) / 2
    assert slowest < 0.45, slowest


def test_catalogue_is_cached_until_a_load_flushes_it(start_fleet):
    """A load's swap publishes `flush` (atelier_etl.swap): every balancer's listener empties its
    cache, the catalogue's included. Two balancers, as on two machines."""
    products = start_fleet("products", instances=1)
    balancer, other = products.add_balancer(), products.add_balancer()
    products.sql("""INSERT INTO product (id, name, slogan, description, category, default_price)
                           VALUES (1, 'Camo Onesie', 's', 'd', 'Jackets', 140), (2, 'Shades', 's', 'd', 'Glasses', 69)""")
    assert [p["name"] for p in balancer.get("/products").json()] == ["Camo Onesie", "Shades"]
    response = balancer.get("/products")
    assert response.headers["X-Cache-Status"] == "HIT"
    # A load replaces the data behind the cache's back: the catalogue stays cached (read-only
    # through the API) ...
    assert other.get("/products").json()[0]["name"] == "Camo Onesie"
    products.sql("UPDATE product SET name = 'Bright Onesie' WHERE id = 1")
    assert balancer.get("/products").json()[0]["name"] == "Camo Onesie"
    # ... until the load's swap commits, with its notification.
    products.sql(f"UPDATE product SET name = 'Bright Onesie' WHERE id = 1; {FLUSH_SQL}")
    for nginx in (balancer, other):
        wait_for(lambda: nginx.get("/products").headers["X-Cache-Status"] == "MISS", 5, "flushed")
        assert nginx.get("/products").json()[0]["name"] == "Bright Onesie"
    # The operator's fallback (tools/stack.py flush) does the same.
    assert balancer.get("/products").headers["X-Cache-Status"] == "HIT"
    assert balancer.flush()
    assert balancer.get("/products").headers["X-Cache-Status"] == "MISS"
