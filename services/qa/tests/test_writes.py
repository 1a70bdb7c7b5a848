"""POST /qa/questions, POST /qa/questions/:id/answers and the four PUTs: what they store, what
they answer, and that a rejected request writes nothing."""
import datetime
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

GOOD_QUESTION = {"body": "Does it run small?", "name": "shopper", "email": "shopper@example.com"}
GOOD_ANSWER = {"body": "It runs true to size.", "name": "owner", "email": "owner@example.com"}


def _location_id(response, prefix):
    assert response.headers["Location"].startswith(prefix)
    return int(response.headers["Location"][len(prefix):])


def _assert_created(response):
    assert response.status_code == 201
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "Created"


def _assert_recent(date_text):
    date = datetime.datetime.strptime(date_text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    assert abs(datetime.datetime.now(datetime.timezone.utc) - date) < datetime.timedelta(seconds=30)


def test_post_question_then_get_shows_it_with_defaults(client, db):
    product = db.fresh_product_id()
    response = client.post("/qa/questions", json={**GOOD_QUESTION, "product_id": str(product)})
    _assert_created(response)
    question_id = _location_id(response, "/qa/questions/")
    results = client.get(f"/qa/questions?product_id={product}").get_json()["results"]
    assert len(results) == 1
    question = results[0]
    _assert_recent(question.pop("question_date"))
    assert question == {"question_id": question_id, "question_body": GOOD_QUESTION["body"],
                        "asker_name": "shopper", "question_helpfulness": 0, "reported": False, "answers": {}}
    assert db.execute("SELECT asker_email, reported, helpful FROM question WHERE id = %s", (question_id,)) == [
        ("shopper@example.com", False, 0)]


def test_post_answer_with_photos_then_get_shows_it_with_defaults(client, db):
    product = db.fresh_product_id()
    question = db.add_question(product)
    photos = ["https://img.example/b.jpg", "http://img.example/a.jpg?w=300&q=80"]
    response = client.post(f"/qa/questions/{question}/answers", json={**GOOD_ANSWER, "photos": photos})
    _assert_created(response)
    answer_id = _location_id(response, "/qa/answers/")
    photo_ids = db.photo_ids(answer_id)
    assert len(photo_ids) == 2

    listed = client.get(f"/qa/questions/{question}/answers").get_json()["results"]
    assert len(listed) == 1
    _assert_recent(listed[0].pop("date"))
    assert listed[0] == {"answer_id": answer_id, "body": GOOD_ANSWER["body"], "answerer_name": "owner",
                         "helpfulness": 0,
                         "photos": [{"id": photo_ids[0], "url": photos[0]}, {"id": photo_ids[1], "url": photos[1]}]}
    nested = client.get(f"/qa/questions?product_id={product}").get_json()["results"][0]["answers"]
    assert list(nested) == [str(answer_id)]
    assert nested[str(answer_id)]["photos"] == photos
    assert db.execute("SELECT answerer_email, reported, helpful FROM answer WHERE id = %s", (answer_id,)) == [
        ("owner@example.com", False, 0)]


def test_post_answer_without_photos(client, db):
    question = db.add_question(db.fresh_product_id())
    response = client.post(f"/qa/questions/{question}/answers", json=GOOD_ANSWER)
    _assert_created(response)
    answer_id = _location_id(response, "/qa/answers/")
    assert db.photo_ids(answer_id) == []
    assert client.get(f"/qa/questions/{question}/answers").get_json()["results"][0]["photos"] == []


@pytest.mark.parametrize("text", [
    "It's \"great\" — isn't it?", "Emoji 😀🎉 and accents éàü, CJK 漢字",
    "'); DROP TABLE question; --", "Robert'); DELETE FROM answer WHERE ('1'='1",
    "back\\slash \\N tab\there\nnew line", "$1 $$ %s %(name)s {id}",
])
def test_text_round_trips_unchanged(client, db, text):
    product = db.fresh_product_id()
    name = text[:60]
    client_question = client.post("/qa/questions", json={"body": text, "name": name, "email": "x@example.com",
                                                         "product_id": product})
    _assert_created(client_question)
    question_id = _location_id(client_question, "/qa/questions/")
    answer = client.post(f"/qa/questions/{question_id}/answers",
                         json={"body": text, "name": name, "email": "y@example.com"})
    _assert_created(answer)
    question = client.get(f"/qa/questions?product_id={product}").get_json()["results"][0]
    assert (question["question_body"], question["asker_name"]) == (text, name)
    nested = next(iter(question["answers"].values()))
    assert (nested["body"], nested["answerer_name"]) == (text, name)
    listed = client.get(f"/qa/questions/{question_id}/answers").get_json()["results"][0]
    assert (listed["body"], listed["answerer_name"]) == (text, name)
    assert db.value("SELECT count(*) FROM question") >= 1  # the tables are still there


def test_limits_are_inclusive(client, db):
    product = db.fresh_product_id()
    longest = {"body": "é" * 1000, "name": "n" * 60, "email": "e" * 48 + "@example.com", "product_id": product}
    assert len(longest["email"]) == 60
    _assert_created(client.post("/qa/questions", json=longest))
    shortest = {"body": "x", "name": "y", "email": "a@b.co", "product_id": product}
    response = client.post("/qa/questions", json=shortest)
    _assert_created(response)
    question_id = _location_id(response, "/qa/questions/")
    five = [f"https://img.example/{n}.jpg" for n in range(5)]
    _assert_created(client.post(f"/qa/questions/{question_id}/answers",
                                json={"body": "😀" * 1000, "name": "😀" * 60, "email": "a@b.co", "photos": five}))


# -- helpful and report -----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["questions", "answers"])
def test_helpful_adds_one_and_ignores_any_body(client, db, kind):
    question = db.add_question(db.fresh_product_id(), helpful=3)
    answer = db.add_answer(question, helpful=3)
    target, table = (question, "question") if kind == "questions" else (answer, "answer")
    first = client.put(f"/qa/{kind}/{target}/helpful")
    assert first.status_code == 204 and first.data == b""
    # real front-ends send an empty form body; a broken JSON body is ignored too
    second = client.put(f"/qa/{kind}/{target}/helpful?question_id=1", data="",
                        content_type="application/x-www-form-urlencoded")
    third = client.put(f"/qa/{kind}/{target}/helpful/", data="{not json", content_type="application/json")
    assert (second.status_code, third.status_code) == (204, 204)
    assert db.value(f"SELECT helpful FROM {table} WHERE id = %s", (target,)) == 6
    assert db.value(f"SELECT reported FROM {table} WHERE id = %s", (target,)) is False


def test_report_hides_question_and_answer_everywhere(client, db):
    product = db.fresh_product_id()
    kept = db.add_question(product, helpful=1)
    reported = db.add_question(product, helpful=2)
    kept_answer = db.add_answer(kept, helpful=5)
    reported_answer = db.add_answer(kept, helpful=6, photos=["https://img.example/r.jpg"])
    db.add_answer(reported)
    before = client.get(f"/qa/questions?product_id={product}").get_json()["results"]
    assert [q["question_id"] for q in before] == [reported, kept]

    for path in (f"/qa/questions/{reported}/report", f"/qa/answers/{reported_answer}/report"):
        response = client.put(path, data="x=1", content_type="application/x-www-form-urlencoded")
        assert response.status_code == 204 and response.data == b""
    # reporting again is harmless
    assert client.put(f"/qa/questions/{reported}/report").status_code == 204

    after = client.get(f"/qa/questions?product_id={product}").get_json()["results"]
    assert [q["question_id"] for q in after] == [kept]
    assert list(after[0]["answers"]) == [str(kept_answer)]
    answers = client.get(f"/qa/questions/{kept}/answers").get_json()["results"]
    assert [a["answer_id"] for a in answers] == [kept_answer]
    assert client.get(f"/qa/questions/{reported}/answers").get_json()["results"] == []
    # reported rows are kept, flagged
    assert db.value("SELECT reported FROM question WHERE id = %s", (reported,)) is True
    assert db.value("SELECT reported FROM answer WHERE id = %s", (reported_answer,)) is True

    # nobody can answer a reported question, and the attempt writes nothing
    state = db.snapshot()
    response = client.post(f"/qa/questions/{reported}/answers", json=GOOD_ANSWER | {"photos": ["https://x.example/1"]})
    assert response.status_code == 404
    assert response.get_json() == {"message": "question not found"}
    assert db.snapshot() == state


def test_concurrent_helpful_under_gunicorn_adds_exactly_one_each(serve, database_url, db):
    question = db.add_question(db.fresh_product_id(), helpful=7)
    answer = db.add_answer(question, helpful=0)
    base = serve("qa", database_url, DB_POOL_MAX=10)

    def put(path):
        return requests.put(base + path, timeout=30).status_code

    paths = [f"/qa/questions/{question}/helpful"] * 50 + [f"/qa/answers/{answer}/helpful"] * 50
    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(put, paths))
    assert statuses == [204] * 100
    assert db.value("SELECT helpful FROM question WHERE id = %s", (question,)) == 57
    assert db.value("SELECT helpful FROM answer WHERE id = %s", (answer,)) == 50


# -- bad input --------------------------------------------------------------------------------

BAD_IDS = ["0", "-1", "abc", "2147483648", "1.5", "%20"]


@pytest.fixture
def existing(db):
    question = db.add_question(db.fresh_product_id())
    return {"question": question, "answer": db.add_answer(question)}


def _assert_rejected(response, status, field):
    assert response.status_code == status, response.data
    body = response.get_json()
    assert set(body) == {"message", "errors"}
    assert isinstance(body["message"], str) and body["message"]
    assert list(body["errors"]) == [field]
    assert all(isinstance(problem, str) for problem in body["errors"][field])


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_bad_ids_everywhere_are_422_naming_the_field(client, db, existing, bad_id):
    state = db.snapshot()
    question = existing["question"]
    cases = [
        (client.get, f"/qa/questions?product_id={bad_id}", None, "product_id"),
        (client.get, f"/qa/questions/{bad_id}/answers", None, "question_id"),
        (client.post, f"/qa/questions/{bad_id}/answers", GOOD_ANSWER, "question_id"),
        (client.put, f"/qa/questions/{bad_id}/helpful", None, "question_id"),
        (client.put, f"/qa/questions/{bad_id}/report", None, "question_id"),
        (client.put, f"/qa/answers/{bad_id}/helpful", None, "answer_id"),
        (client.put, f"/qa/answers/{bad_id}/report", None, "answer_id"),
        (client.get, f"/qa/questions/{question}/answers?page={bad_id}", None, "page"),
        (client.get, f"/qa/questions/{question}/answers?count={bad_id}", None, "count"),
        (client.get, f"/qa/questions?product_id=1&page={bad_id}", None, "page"),
        (client.get, f"/qa/questions?product_id=1&count={bad_id}", None, "count"),
    ]
    for call, path, body, field in cases:
        _assert_rejected(call(path, json=body) if body else call(path), 422, field)
    assert db.snapshot() == state


def test_missing_product_id_is_422(client):
    _assert_rejected(client.get("/qa/questions"), 422, "product_id")
    _assert_rejected(client.get("/qa/questions?product_id="), 422, "product_id")


@pytest.mark.parametrize("kind", ["questions", "answers"])
@pytest.mark.parametrize("action", ["helpful", "report"])
def test_put_on_unknown_id_is_404_and_changes_nothing(client, db, kind, action):
    state = db.snapshot()
    unknown = db.value(f"SELECT coalesce(max(id), 0) + 1000 FROM {kind[:-1]}")
    for target in (unknown, 2147483647):
        response = client.put(f"/qa/{kind}/{target}/{action}")
        assert response.status_code == 404
        assert response.get_json() == {"message": f"{kind[:-1]} not found"}
    assert db.snapshot() == state


def test_post_answer_to_unknown_question_is_404_and_writes_nothing(client, db):
    state = db.snapshot()
    unknown = db.value("SELECT coalesce(max(id), 0) + 1000 FROM question")
    response = client.post(f"/qa/questions/{unknown}/answers",
                           json=GOOD_ANSWER | {"photos": ["https://img.example/1.jpg"]})
    assert response.status_code == 404
    assert response.get_json() == {"message": "question not found"}
    assert db.snapshot() == state


_TOO_MANY_PHOTOS = [f"https://img.example/{n}.jpg" for n in range(6)]

BAD_QUESTION_BODIES = [
    ({k: v for k, v in GOOD_QUESTION.items() if k != "body"}, "body"),
    ({k: v for k, v in GOOD_QUESTION.items() if k != "name"}, "name"),
    ({k: v for k, v in GOOD_QUESTION.items() if k != "email"}, "email"),
    (GOOD_QUESTION, "product_id"),  # product_id missing
    (GOOD_QUESTION | {"body": ""}, "body"),
    (GOOD_QUESTION | {"body": "x" * 1001}, "body"),
    (GOOD_QUESTION | {"body": None}, "body"),
    (GOOD_QUESTION | {"body": 123}, "body"),
    (GOOD_QUESTION | {"name": ""}, "name"),
    (GOOD_QUESTION | {"name": "n" * 61}, "name"),
    (GOOD_QUESTION | {"name": ["shopper"]}, "name"),
    (GOOD_QUESTION | {"email": "not-an-email"}, "email"),
    (GOOD_QUESTION | {"email": "a@b"}, "email"),
    (GOOD_QUESTION | {"email": "two@at@example.com"}, "email"),
    (GOOD_QUESTION | {"email": "spaced out@example.com"}, "email"),
    (GOOD_QUESTION | {"email": "e" * 49 + "@example.com"}, "email"),  # 61 characters
    (GOOD_QUESTION | {"email": ""}, "email"),
]
BAD_PRODUCT_IDS = [0, -1, "abc", 2147483648, "2147483648", 1.5, "1.5", True, None, "", [1]]


@pytest.mark.parametrize("body, field", BAD_QUESTION_BODIES + [
    (GOOD_QUESTION | {"product_id": bad}, "product_id") for bad in BAD_PRODUCT_IDS])
def test_bad_question_bodies_are_422_and_write_nothing(client, db, body, field):
    if field != "product_id":
        body = body | {"product_id": db.fresh_product_id()}
    state = db.snapshot()
    _assert_rejected(client.post("/qa/questions", json=body), 422, field)
    assert db.snapshot() == state


BAD_ANSWER_BODIES = [
    ({k: v for k, v in GOOD_ANSWER.items() if k != "body"}, "body"),
    ({k: v for k, v in GOOD_ANSWER.items() if k != "name"}, "name"),
    ({k: v for k, v in GOOD_ANSWER.items() if k != "email"}, "email"),
    (GOOD_ANSWER | {"body": ""}, "body"),
    (GOOD_ANSWER | {"body": "😀" * 1001}, "body"),
    (GOOD_ANSWER | {"name": "n" * 61}, "name"),
    (GOOD_ANSWER | {"email": "owner.example.com"}, "email"),
    (GOOD_ANSWER | {"photos": _TOO_MANY_PHOTOS}, "photos"),
    (GOOD_ANSWER | {"photos": ["not a url"]}, "photos"),
    (GOOD_ANSWER | {"photos": ["ftp://img.example/1.jpg"]}, "photos"),
    (GOOD_ANSWER | {"photos": ["javascript:alert(1)"]}, "photos"),
    (GOOD_ANSWER | {"photos": ["https://img.example/ok.jpg", 5]}, "photos"),
    (GOOD_ANSWER | {"photos": "https://img.example/1.jpg"}, "photos"),
    (GOOD_ANSWER | {"photos": None}, "photos"),
]


@pytest.mark.parametrize("body, field", BAD_ANSWER_BODIES)
def test_bad_answer_bodies_are_422_and_write_nothing(client, db, existing, body, field):
    state = db.snapshot()
    _assert_rejected(client.post(f"/qa/questions/{existing['question']}/answers", json=body), 422, field)
    assert db.snapshot() == state


@pytest.mark.parametrize("data, content_type", [
    ('{"body": "x", "name": ', "application/json"),            # malformed JSON
    ("", "application/json"),                                   # empty body
    ('["a list"]', "application/json"),                         # not an object
    ("body=x&name=y&email=a%40b.co&product_id=1", "application/x-www-form-urlencoded"),
    (json.dumps(GOOD_QUESTION | {"product_id": 1}), "text/plain"),
    (json.dumps(GOOD_QUESTION | {"product_id": 1}), None),      # no content type at all
])
def test_unreadable_bodies_are_400_and_write_nothing(client, db, existing, data, content_type):
    state = db.snapshot()
    headers = {"Content-Type": content_type} if content_type else {}
    for path in ("/qa/questions", f"/qa/questions/{existing['question']}/answers"):
        _assert_rejected(client.post(path, data=data, headers=headers), 400, "request")
    assert db.snapshot() == state


def test_post_accepts_digit_strings_and_ignores_unknown_keys(client, db):
    product = db.fresh_product_id()
    response = client.post("/qa/questions", json=GOOD_QUESTION | {"product_id": str(product), "extra": [1]},
                           headers={"Authorization": "Bearer token"})
    _assert_created(response)
    assert [q["question_id"] for q in client.get(f"/qa/questions?product_id={product}").get_json()["results"]] == [
        _location_id(response, "/qa/questions/")]


def test_trailing_slashes_are_the_same_paths(client, db):
    product = db.fresh_product_id()
    _assert_created(client.post("/qa/questions/", json=GOOD_QUESTION | {"product_id": product}))
    question = client.get(f"/qa/questions/?product_id={product}").get_json()["results"][0]["question_id"]
    _assert_created(client.post(f"/qa/questions/{question}/answers/", json=GOOD_ANSWER))
    assert len(client.get(f"/qa/questions/{question}/answers/").get_json()["results"]) == 1


def test_answer_and_photos_commit_together_or_not_at_all(database_factory):
    """A photo row that fails to insert takes its answer down with it (one statement, one
    transaction). The failure is a trigger of this test's own database."""
    from contextlib import closing

    import psycopg2

    from qa import create_app

    url = database_factory("qa")
    with closing(psycopg2.connect(url.owner)) as conn, conn, conn.cursor() as cur:  # DDL: the owner
        cur.execute("""
            CREATE FUNCTION refuse_photo() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.url LIKE '%refused%' THEN RAISE EXCEPTION 'photo refused'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_photo BEFORE INSERT ON answer_photo FOR EACH ROW EXECUTE FUNCTION refuse_photo();
            INSERT INTO question (product_id, body, date_written, asker_name, asker_email)
            VALUES (1, 'q', now(), 'n', 'n@example.com');""")
    client = create_app({"database_url": url}).test_client()
    photos = ["https://img.example/fine.jpg", "https://img.example/refused.jpg"]
    response = client.post("/qa/questions/1/answers", json=GOOD_ANSWER | {"photos": photos})
    assert response.status_code == 500
    assert response.get_json() == {"message": "internal server error"}
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT (SELECT count(*) FROM answer), (SELECT count(*) FROM answer_photo)")
        assert cur.fetchone() == (0, 0)
    _assert_created(client.post("/qa/questions/1/answers", json=GOOD_ANSWER | {"photos": photos[:1]}))
