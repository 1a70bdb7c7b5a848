"""POST /reviews, PUT helpful/report and GET /reviews/meta: exact values, aggregates kept exact,
and every bad input rejected without writing anything."""
import json
import time

import pytest

PRODUCT = 700
OTHER_PRODUCT = 701


@pytest.fixture(scope="module")
def characteristics(db):
    """Product 700 has Fit, Length, Comfort; product 701 has Quality."""
    with db.cursor() as cur:
        cur.execute("""INSERT INTO characteristic (product_id, name)
                       VALUES (%s, 'Fit'), (%s, 'Length'), (%s, 'Comfort'), (%s, 'Quality')
                       RETURNING id""", (PRODUCT, PRODUCT, PRODUCT, OTHER_PRODUCT))
        fit, length, comfort, quality = (row[0] for row in cur.fetchall())
    return {"Fit": fit, "Length": length, "Comfort": comfort, "Quality": quality}


def review_body(product_id=PRODUCT, **changes):
    body = {"product_id": product_id, "rating": 5, "summary": "Great",
            "body": "Lovely shades, they fit well and look great in the sun all day long.",
            "recommend": True, "name": "jackson11", "email": "jackson11@example.com",
            "photos": ["https://example.com/a.jpg", "http://example.com/b.jpg"], "characteristics": {}}
    body.update(changes)
    return body


def post(client, body):
    response = client.post("/reviews", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return int(response.headers["Location"].rsplit("/", 1)[1])


def test_post_answers_created_and_stores_exactly_what_was_sent(client, db, characteristics):
    started_ms = int(time.time() * 1000)
    response = client.post("/reviews/", json=review_body(
        rating="4", recommend="false", summary="", characteristics={str(characteristics["Fit"]): "3"}))
    finished_ms = int(time.time() * 1000)
    assert response.status_code == 201
    assert response.get_data(as_text=True) == "Created"
    assert response.mimetype == "text/plain"
    review_id = int(response.headers["Location"].removeprefix("/reviews/"))
    with db.cursor() as cur:
        cur.execute("""SELECT product_id, rating, date_ms, summary, body, recommend, reported,
                              reviewer_name, reviewer_email, response, helpfulness
                         FROM review WHERE id = %s""", (review_id,))
        row = cur.fetchone()
        cur.execute("SELECT url FROM review_photo WHERE review_id = %s ORDER BY id", (review_id,))
        photos = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT characteristic_id, value FROM characteristic_review WHERE review_id = %s",
                    (review_id,))
        ratings = cur.fetchall()
    assert row[:2] == (PRODUCT, 4) and started_ms - 1 <= row[2] <= finished_ms + 1
    assert row[3:] == ("", review_body()["body"], False, False, "jackson11", "jackson11@example.com", None, 0)
    assert photos == review_body()["photos"]
    assert ratings == [(characteristics["Fit"], 3)]
    listed = client.get(f"/reviews?product_id={PRODUCT}&sort=newest").get_json()["results"][0]
    assert listed["review_id"] == review_id
    assert [p["url"] for p in listed["photos"]] == photos


def test_posted_ids_follow_the_loaded_ones(client, db, characteristics):
    with db.cursor() as cur:
        cur.execute("SELECT max(id) FROM review")
        highest = cur.fetchone()[0] or 0
    assert post(client, review_body()) > highest


def test_meta_values_exact_counts_as_strings_and_key_order(client, db, helpers, characteristics):
    product = 702
    with db.cursor() as cur:
        cur.execute("INSERT INTO characteristic (product_id, name) VALUES (%s, 'Size'), (%s, 'Width') "
                    "RETURNING id", (product, product))
        size, width = (row[0] for row in cur.fetchall())
    assert helpers.pairs(client.get(f"/reviews/meta?product_id={product}").get_json()) == [
        ("product_id", str(product)), ("ratings", []), ("recommended", []),
        ("characteristics", [("Size", [("id", size), ("value", None)]),
                             ("Width", [("id", width), ("value", None)])])]
    for rating, value, recommend in [(5, 2, True), (5, 3, False), (1, 3, True)]:
        post(client, review_body(product, rating=rating, recommend=recommend,
                                 characteristics={str(size): value}))
    reported = post(client, review_body(product, rating=2, characteristics={str(size): 5, str(width): 1}))
    assert client.put(f"/reviews/{reported}/report").status_code == 204
    raw = client.get(f"/reviews/meta?product_id={product}").get_data(as_text=True)
    assert helpers.pairs(json.loads(raw)) == [
        ("product_id", str(product)), ("ratings", [("1", "1"), ("5", "2")]),
        ("recommended", [("false", "1"), ("true", "2")]),
        ("characteristics", [("Size", [("id", size), ("value", "2.6666666666666667")]),
                             ("Width", [("id", width), ("value", None)])])]
    assert json.loads(raw) == helpers.recompute_meta(db, [product])[product]


def test_meta_of_a_product_nobody_knows(client):
    assert client.get("/reviews/meta?product_id=9").get_json() == {
        "product_id": "9", "ratings": {}, "recommended": {}, "characteristics": {}}


def test_helpful_adds_one_and_report_hides(client, db, characteristics):
    review_id = post(client, review_body(characteristics={str(characteristics["Length"]): 4}))
    for _ in range(3):
        response = client.put(f"/reviews/{review_id}/helpful", data="x=1",
                              content_type="application/x-www-form-urlencoded")
        assert response.status_code == 204 and response.get_data() == b""
    with db.cursor() as cur:
        cur.execute("SELECT helpfulness FROM review WHERE id = %s", (review_id,))
        assert cur.fetchone()[0] == 3
    assert client.put(f"/reviews/{review_id}/report?review_id=1", data="{not json").status_code == 204
    for sort in ("newest", "helpful", "relevant"):
        listed = client.get(f"/reviews?product_id={PRODUCT}&count=1000&sort={sort}").get_json()["results"]
        assert review_id not in [r["review_id"] for r in listed]


def test_reporting_twice_subtracts_once(client, db, helpers, characteristics):
    review_id = post(client, review_body(rating=1, characteristics={str(characteristics["Comfort"]): 1}))
    assert client.put(f"/reviews/{review_id}/report").status_code == 204
    after_first = helpers.snapshot(db)
    assert client.put(f"/reviews/{review_id}/report").status_code == 204
    assert helpers.snapshot(db) == after_first
    assert helpers.served_meta(db, [PRODUCT]) == helpers.recompute_meta(db, [PRODUCT])


@pytest.mark.parametrize("verb", ["helpful", "report"])
def test_put_unknown_and_bad_ids(client, db, helpers, verb):
    before = helpers.snapshot(db)
    response = client.put(f"/reviews/2147483646/{verb}")
    assert response.status_code == 404 and response.get_json() == {"message": "review not found"}
    for bad in ("abc", "0", "-1", "2147483648", "1.5"):
        response = client.put(f"/reviews/{bad}/{verb}")
        assert response.status_code == 422
        assert list(response.get_json()["errors"]) == ["review_id"]
    assert helpers.snapshot(db) == before


BAD_BODIES = [
    # (field the 422 names, changes to a valid body); None as a value removes the field
    ("product_id", {"product_id": None}), ("product_id", {"product_id": 0}),
    ("product_id", {"product_id": "abc"}), ("product_id", {"product_id": 2147483648}),
    ("product_id", {"product_id": 1.5}),
    ("rating", {"rating": None}), ("rating", {"rating": 0}), ("rating", {"rating": 6}),
    ("rating", {"rating": "1.5"}), ("rating", {"rating": 4.5}), ("rating", {"rating": True}),
    ("rating", {"rating": "abc"}),
    ("summary", {"summary": None}), ("summary", {"summary": "s" * 61}), ("summary", {"summary": 123}),
    ("body", {"body": None}), ("body", {"body": "b" * 49}), ("body", {"body": "b" * 1001}),
    ("body", {"body": ["b" * 60]}),
    ("recommend", {"recommend": None}), ("recommend", {"recommend": "yes"}), ("recommend", {"recommend": 1}),
    ("name", {"name": None}), ("name", {"name": ""}), ("name", {"name": "n" * 61}),
    ("email", {"email": None}), ("email", {"email": "not-an-email"}), ("email", {"email": "a@b"}),
    ("email", {"email": "x" * 50 + "@example.com"}),
    ("photos", {"photos": ["https://a/%d.jpg" % i for i in range(6)]}), ("photos", {"photos": ["ftp://a/b"]}),
    ("photos", {"photos": "https://a/b.jpg"}), ("photos", {"photos": [1]}),
    ("characteristics", {"characteristics": []}), ("characteristics", {"characteristics": {"abc": 3}}),
    ("characteristics", {"characteristics": {"2147483647": 3}}),
    ("characteristics", {"characteristics": "Fit"}),
]


@pytest.mark.parametrize("field,changes", BAD_BODIES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_BODIES)])
def test_bad_bodies_are_422_and_write_nothing(client, db, helpers, characteristics, field, changes):
    body = review_body(characteristics={str(characteristics["Fit"]): 4})
    for key, value in changes.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    before = helpers.snapshot(db)
    response = client.post("/reviews", json=body)
    assert response.status_code == 422, response.get_data(as_text=True)
    errors = response.get_json()["errors"]
    assert list(errors) == [field]
    assert helpers.snapshot(db) == before


@pytest.mark.parametrize("case", ["other product", "unknown id", "value 0", "value 6", "value text",
                                  "same id twice"])
def test_characteristics_must_be_the_products_and_rated_1_to_5(client, db, helpers, characteristics, case):
    fit, quality = str(characteristics["Fit"]), str(characteristics["Quality"])
    ratings = {"other product": {fit: 4, quality: 4}, "unknown id": {fit: 4, "2147483600": 4},
               "value 0": {fit: 0}, "value 6": {fit: 6}, "value text": {fit: "good"},
               "same id twice": {fit: 4, "0" + fit: 3}}[case]
    before = helpers.snapshot(db)
    response = client.post("/reviews", json=review_body(characteristics=ratings))
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["characteristics"]
    assert helpers.snapshot(db) == before


@pytest.mark.parametrize("data,content_type", [
    ('{"product_id": 700', "application/json"),
    ("[1, 2]", "application/json"),
    ("product_id=700&rating=5", "application/x-www-form-urlencoded"),
    (json.dumps(review_body()), "text/plain"),
    ("", "application/json"),
])
def test_unreadable_bodies_are_400_and_write_nothing(client, db, helpers, data, content_type):
    before = helpers.snapshot(db)
    response = client.post("/reviews", data=data, content_type=content_type)
    assert response.status_code == 400
    body = response.get_json()
    assert set(body) == {"message", "errors"} and list(body["errors"]) == ["request"]
    assert helpers.snapshot(db) == before


@pytest.mark.parametrize("query", ["", "product_id=x", "product_id=0"])
def test_meta_bad_product_id(client, query):
    response = client.get(f"/reviews/meta?{query}")
    assert response.status_code == 422 and list(response.get_json()["errors"]) == ["product_id"]


def test_every_meta_equals_its_recomputation_after_this_module(client, db, helpers, characteristics):
    expected = helpers.recompute_meta(db)
    assert helpers.served_meta(db, expected) == expected
