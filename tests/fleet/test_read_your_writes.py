"""The balancer's cache never shows a writer stale data (infra/nginx/README.md, "Caching").

Each test warms every cached view of a product (the second read must be a cache HIT), writes
through the same balancer, and reads every view again at once: each must equal what an instance
answers straight from the database. The balancer under test keeps mutable views for 60 s
(--stale-bound 60), so only the version scheme, not the passing of time, can refresh them."""
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

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
    fleet.balancer = fleet.add_balancer(stale_bound=60)
    return fleet


@pytest.fixture(scope="module")
def reviews(start_fleet):
    fleet = start_fleet("reviews", instances=2)
    fleet.balancer = fleet.add_balancer(stale_bound=60)
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


def test_another_balancer_shows_a_write_within_its_stale_bound(qa):
    """Two balancers on the same instances (as on AWS, one nginx per machine): a write through
    one is seen through the other within 1 s (the default --stale-bound), never later."""
    other = qa.add_balancer()  # default bound: 1 s
    product = 9300
    questions, _ = seed_qa(qa.balancer, product)
    view = f"/qa/questions?product_id={product}"
    for _ in range(5):
        while other.get(view).headers["X-Cache-Status"] != "HIT":  # cached there (a new slot: again)
            pass
        assert qa.balancer.put(f"/qa/questions/{questions[0]}/helpful").status_code == 204
        written = time.monotonic()
        expected = qa.direct(1, view).json()
        while True:
            sent = time.monotonic()
            if other.get(view).json() == expected:
                break
            # A read sent more than 1 s after the write was acknowledged must be fresh (the
            # time the answer takes to come back does not count).
            assert sent - written <= 1.02, "another balancer still stale 1 s after the write"
            time.sleep(0.01)


def test_a_busy_view_turns_over_without_waiting_on_the_cache_lock(qa):
    """Readers hammering one view across several generations (1 s bound): one request fills
    each next generation while the others keep hitting the current one, so nobody waits on
    nginx's cache lock (it wakes its waiters only every 500 ms), and the instance is asked
    about once per 3/4 of the bound, not once per reader."""
    balancer = qa.add_balancer()  # default bound: 1 s
    product = 9350
    seed_qa(qa.balancer, product)
    view = f"/qa/questions?product_id={product}&count=3"
    assert balancer.get(view).headers["X-Cache-Status"] == "MISS"  # the view's first generation
    seconds = 3.0
    deadline = time.monotonic() + seconds

    def read_until_deadline():
        session = requests.Session()
        while time.monotonic() < deadline:
            assert session.get(balancer.base + view, timeout=15).status_code == 200

    with ThreadPoolExecutor(6) as pool:
        for future in [pool.submit(read_until_deadline) for _ in range(6)]:
            future.result()
    time.sleep(1.2)  # the access log is flushed every second
    lines = [line for line in balancer.access_log.read_text().splitlines() if f'GET {view} ' in line]
    fetched = [line for line in lines if " up=- " not in line]
    slowest = max(float(re.search(r" rt=([0-9.]+) ", line)[1]) for line in lines)
    assert len(lines) > 100
    assert len(fetched) <= seconds / 0.75 + 2, len(fetched)
    # A lock waiter takes at least 500 ms; nothing here comes near it.
    assert slowest < 0.45, slowest


def test_catalogue_is_cached_until_a_load_flushes_it(start_fleet):
    products = start_fleet("products", instances=1)
    balancer = products.add_balancer()
    products.sql("""INSERT INTO product (id, name, slogan, description, category, default_price)
                           VALUES (1, 'Camo Onesie', 's', 'd', 'Jackets', 140), (2, 'Shades', 's', 'd', 'Glasses', 69)""")
    assert [p["name"] for p in balancer.get("/products").json()] == ["Camo Onesie", "Shades"]
    response = balancer.get("/products")
    assert response.headers["X-Cache-Status"] == "HIT"
    # A load replaces the data behind the cache's back: the catalogue stays cached (read-only
    # through the API) ...
    products.sql("UPDATE product SET name = 'Bright Onesie' WHERE id = 1")
    assert balancer.get("/products").json()[0]["name"] == "Camo Onesie"
    # ... until the load's flush (`make load` runs `stack.py flush`).
    assert balancer.flush()
    response = balancer.get("/products")
    assert response.headers["X-Cache-Status"] == "MISS"
    assert response.json()[0]["name"] == "Bright Onesie"


def test_concurrent_misses_on_one_key_reach_an_instance_once(start_own_fleet):
    """20 readers miss on one key while the instance is frozen (SIGSTOP), so that all of them
    are waiting at once; when it resumes, it has received one request, not 20."""
    fleet = start_own_fleet("qa", instances=1)
    balancer = fleet.add_balancer(stale_bound=60)
    product = 9400
    seed_qa(balancer, product)
    view = f"/qa/questions?product_id={product}&count=7"
    fleet.signal_instance(0, signal.SIGSTOP)
    with ThreadPoolExecutor(20) as pool:
        pending = [pool.submit(requests.get, balancer.base + view, timeout=15) for _ in range(20)]
        time.sleep(1.0)
        fleet.signal_instance(0, signal.SIGCONT)
        answers = [future.result() for future in pending]
    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.text for answer in answers}) == 1
    served = balancer.upstreams_in_log(view)
    assert sum(served.values()) == 20
    assert sum(count for address, count in served.items() if address != "-") == 1, served
