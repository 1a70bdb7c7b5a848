"""Idempotency-Key on the three POSTs, against real gunicorn instances and a real PostgreSQL:
a repeat writes nothing and gets the first answer, another request under the same key is 422,
concurrent duplicates write once, an expired key is reusable, a malformed key is 422, a refused
write remembers nothing."""
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
import requests

QUESTION = {"body": "Does it run small?", "name": "shopper", "email": "shopper@example.com", "product_id": 5}
ANSWER = {"body": "It runs true to size.", "name": "owner", "email": "owner@example.com",
          "photos": ["https://example.com/a.jpg"]}
REVIEW = {"product_id": 5, "rating": 4, "summary": "Good", "body": "Lovely shades, they fit well and look great in the sun all day long.",
          "recommend": True, "name": "jackson11", "email": "jackson11@example.com", "photos": [],
          "characteristics": {}}


@pytest.fixture(scope="module")
def qa(databases, serve_module):
    return serve_module("qa", databases["qa"]), databases["qa"]


@pytest.fixture(scope="module")
def reviews(databases, serve_module):
    return serve_module("reviews", databases["reviews"]), databases["reviews"]


def rows(url, table):
    with psycopg2.connect(url.owner) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")
        count = cur.fetchone()[0]
    conn.close()
    return count


def owner_sql(url, sql, params=()):
    with psycopg2.connect(url.owner) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
    conn.close()


def post(base, path, body, key):
    return requests.post(base + path, json=body, timeout=15, headers={"Idempotency-Key": key} if key else {})


def question_path(base):
    first = post(base, "/qa/questions", QUESTION, None)
    return first.headers["Location"] + "/answers"


CASES = {
    "question": ("qa", lambda base: "/qa/questions", QUESTION, "question"),
    "answer": ("qa", question_path, ANSWER, "answer"),
    "review": ("reviews", lambda base: "/reviews", REVIEW, "review"),
}


@pytest.fixture(params=sorted(CASES))
def case(request, qa, reviews):
    service, path_of, body, table = CASES[request.param]
    base, url = qa if service == "qa" else reviews
    return base, url, path_of(base), body, table


def test_a_repeat_writes_nothing_and_gets_the_first_answer(case):
    base, url, path, body, table = case
    key = str(uuid.uuid4())
    first = post(base, path, body, f'"{key}"')  # the draft's sf-string form
    assert first.status_code == 201 and first.text == "Created"
    assert "Idempotent-Replayed" not in first.headers
    before = rows(url, table)
    for _ in range(3):
        again = post(base, path, body, key)  # bare: the same key
        assert again.status_code == 201 and again.text == "Created"
        assert again.headers["Location"] == first.headers["Location"]
        assert again.headers["Idempotent-Replayed"] == "true"
    assert rows(url, table) == before


def test_the_same_key_with_another_request_is_422_and_writes_nothing(case):
    base, url, path, body, table = case
    key = str(uuid.uuid4())
    assert post(base, path, body, key).status_code == 201
    before = rows(url, table)
    other = post(base, path, {**body, "body": body["body"] + " Really."}, key)
    assert other.status_code == 422
    assert list(other.json()["errors"]) == ["Idempotency-Key"]
    assert rows(url, table) == before


def test_concurrent_duplicates_write_exactly_once(case):
    base, url, path, body, table = case
    key = str(uuid.uuid4())
    before = rows(url, table)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: post(base, path, body, key), range(12)))
    assert [answer.status_code for answer in answers] == [201] * 12
    assert len({answer.headers["Location"] for answer in answers}) == 1
    assert sum("Idempotent-Replayed" not in answer.headers for answer in answers) == 1
    assert rows(url, table) == before + 1


def test_an_expired_key_is_reusable_and_expired_keys_are_deleted(case):
    base, url, path, body, table = case
    old, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    first = post(base, path, body, old)
    owner_sql(url, "UPDATE idempotency_key SET created_at = now() - interval '25 hours' WHERE key = %s", (old,))
    again = post(base, path, body, old)
    assert again.status_code == 201 and again.headers["Location"] != first.headers["Location"]
    assert "Idempotent-Replayed" not in again.headers
    owner_sql(url, "UPDATE idempotency_key SET created_at = now() - interval '25 hours'")
    expired = rows(url, "idempotency_key")
    assert post(base, path, body, fresh).status_code == 201  # deletes up to 8 expired keys
    assert rows(url, "idempotency_key") == max(expired - 8, 0) + 1


@pytest.mark.parametrize("key", ["", "a" * 256, "caf\u00e9", '"un"terminated"', "two words"])
def test_a_malformed_key_is_422_and_writes_nothing(qa, key):
    base, url = qa
    before = rows(url, "question")
    response = requests.post(base + "/qa/questions", data=json.dumps(QUESTION).encode(), timeout=15,
                             headers={"Content-Type": "application/json", "Idempotency-Key": key.encode()})
    assert response.status_code == 422 and list(response.json()["errors"]) == ["Idempotency-Key"]
    assert rows(url, "question") == before


def test_a_refused_write_remembers_nothing(qa):
    base, url = qa
    key = str(uuid.uuid4())
    refused = post(base, "/qa/questions/999999999/answers", ANSWER, key)
    assert refused.status_code == 404
    keys = rows(url, "idempotency_key")
    assert post(base, "/qa/questions", {**QUESTION, "product_id": 0}, key).status_code == 422
    assert rows(url, "idempotency_key") == keys


def test_a_database_of_an_earlier_release_gets_the_key_table(database_factory):
    """`make up` over an existing database adds the tables it lacks (schema.add_missing_tables)."""
    from atelier_common.schema import add_missing_tables

    url = database_factory("qa")
    owner_sql(url, "DROP TABLE idempotency_key")
    owner_sql(url, "INSERT INTO question (product_id, body, date_written, asker_name, asker_email) "
                   "VALUES (1, 'kept', now(), 'a', 'a@example.com')")
    assert add_missing_tables(url.owner, "qa") == ["idempotency_key"]
    assert add_missing_tables(url.owner, "qa") == []
    assert rows(url, "question") == 1 and rows(url, "idempotency_key") == 0
    with psycopg2.connect(url.owner) as conn, conn.cursor() as cur:
        cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'idempotency_key' ORDER BY 1")
        assert [row[0] for row in cur.fetchall()] == ["idempotency_key_created_idx", "idempotency_key_pkey"]
    conn.close()
    with psycopg2.connect(url) as conn, conn.cursor() as cur:  # the service's own role may use it
        cur.execute("INSERT INTO idempotency_key (key, fingerprint, location) VALUES ('k', '', '/x')")
    conn.close()
