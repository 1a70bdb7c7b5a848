"""GET /reviews: shape, exact values, every order with its tie-breaks, paging, clamping."""
import json
from datetime import datetime, timezone

import pytest

from reviews import create_app

SORTS = {"newest": ("newest", "newness"), "helpful": ("helpful", "helpfulness"),
         "relevant": ("relevant", "relevance")}


def iso_ms(date_ms: int) -> str:
    moment = datetime.fromtimestamp(date_ms / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{date_ms % 1000:03d}Z"


def insert_review(cur, product_id, *, helpfulness=0, date_ms=1595884714409, reported=False,
                  response=None, rating=4, recommend=True, summary="Nice", body="b" * 60,
                  name="reviewer", email="r@example.com"):
    cur.execute("""INSERT INTO review (product_id, rating, date_ms, summary, body, recommend, reported,
                                       reviewer_name, reviewer_email, response, helpfulness)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                (product_id, rating, date_ms, summary, body, recommend, reported, name, email,
                 response, helpfulness))
    return cur.fetchone()[0]


@pytest.fixture(scope="module")
def ranked(db):
    """Product 500: reviews built to collide on every sort key but the last tie-break."""
    product_id = 500
    day = 86_400_000
    specs = [dict(helpfulness=5, date_ms=1_600_000_000_000), dict(helpfulness=5, date_ms=1_600_000_000_000),
             dict(helpfulness=5, date_ms=1_600_000_000_000 + day), dict(helpfulness=9, date_ms=1_500_000_000_000),
             dict(helpfulness=0, date_ms=1_700_000_000_000), dict(helpfulness=0, date_ms=1_700_000_000_000),
             dict(helpfulness=2, date_ms=1_650_000_000_000)]
    rows = []
    with db.cursor() as cur:
        for spec in specs:
            rows.append(dict(spec, id=insert_review(cur, product_id, **spec)))
        # reported rows rank first on every key and must never show
        insert_review(cur, product_id, helpfulness=100, date_ms=1_800_000_000_000, reported=True)
        insert_review(cur, 501, helpfulness=100, date_ms=1_800_000_000_000)  # another product
    return product_id, rows


def expected_ids(rows, sort):
    keys = {"newest": lambda r: (r["date_ms"], r["id"]),
            "helpful": lambda r: (r["helpfulness"], r["id"]),
            "relevant": lambda r: (r["helpfulness"], r["date_ms"], r["id"])}
    return [r["id"] for r in sorted(rows, key=keys[sort], reverse=True)]


@pytest.mark.parametrize("sort,spelling", [(sort, spelling) for sort, spellings in SORTS.items()
                                           for spelling in spellings])
def test_every_sort_and_alias_orders_with_its_tie_breaks(client, ranked, sort, spelling):
    product_id, rows = ranked
    body = client.get(f"/reviews?product_id={product_id}&count=100&sort={spelling}").get_json()
    assert [r["review_id"] for r in body["results"]] == expected_ids(rows, sort)


def test_default_sort_is_relevant(client, ranked):
    product_id, rows = ranked
    body = client.get(f"/reviews?product_id={product_id}&count=100").get_json()
    assert [r["review_id"] for r in body["results"]] == expected_ids(rows, "relevant")


@pytest.mark.parametrize("sort", SORTS)
def test_pages_slice_the_same_order(client, ranked, sort):
    product_id, rows = ranked
    order = expected_ids(rows, sort)
    seen = []
    for page in (1, 2, 3, 4):
        body = client.get(f"/reviews?product_id={product_id}&page={page}&count=2&sort={sort}").get_json()
        assert (body["page"], body["count"]) == (page, 2)
        seen += [r["review_id"] for r in body["results"]]
    assert seen == order


def test_one_review_with_every_field_exact_in_key_order(client, db, helpers):
    with db.cursor() as cur:
        review_id = insert_review(cur, 510, helpfulness=7, date_ms=1595884714409, rating=3,
                                  recommend=False, summary="Tab\there, \"quotes\" & ünïcode 😀",
                                  body="Line one\nline two, with a backslash \\ " + "x" * 30,
                                  name="shortandsweeet", email="s@example.com", response="Thanks!")
        cur.execute("INSERT INTO review_photo (id, review_id, url) VALUES (%s, %s, 'https://b'), "
                    "(%s, %s, 'https://a')", (900_002, review_id, 900_001, review_id))
    raw = client.get("/reviews/?product_id=510&sort=newest&unknown=1").get_data(as_text=True)
    assert helpers.pairs(json.loads(raw)) == [
        ("product", "510"), ("page", 1), ("count", 5),
        ("results", [[("review_id", review_id), ("rating", 3),
                      ("summary", "Tab\there, \"quotes\" & ünïcode 😀"), ("recommend", False),
                      ("response", "Thanks!"),
                      ("body", "Line one\nline two, with a backslash \\ " + "x" * 30),
                      ("date", iso_ms(1595884714409)), ("reviewer_name", "shortandsweeet"),
                      ("helpfulness", 7),
                      ("photos", [[("id", 900_001), ("url", "https://a")],
                                  [("id", 900_002), ("url", "https://b")]])]])]
    assert iso_ms(1595884714409) == "2020-07-27T21:18:34.409Z"


def test_response_null_and_no_photos(client, db):
    with db.cursor() as cur:
        insert_review(cur, 511, response=None)
    result = client.get("/reviews?product_id=511").get_json()["results"][0]
    assert result["response"] is None and result["photos"] == []


def test_product_without_reviews_and_echoed_defaults(client):
    response = client.get("/reviews?product_id=2147483647")
    assert response.status_code == 200
    assert response.get_json() == {"product": "2147483647", "page": 1, "count": 5, "results": []}


def test_reported_reviews_are_never_listed(client, db):
    with db.cursor() as cur:
        insert_review(cur, 512, reported=True)
        visible = insert_review(cur, 512)
    for sort in SORTS:
        body = client.get(f"/reviews?product_id=512&sort={sort}").get_json()
        assert [r["review_id"] for r in body["results"]] == [visible]


def test_count_is_clamped_to_the_configured_maximum_and_echoed(database_url, ranked):
    product_id, rows = ranked
    client = create_app({"database_url": database_url, "max_page_count": 3}).test_client()
    body = client.get(f"/reviews?product_id={product_id}&count=999999999").get_json()
    assert body["count"] == 3
    assert [r["review_id"] for r in body["results"]] == expected_ids(rows, "relevant")[:3]
    page_two = client.get(f"/reviews?product_id={product_id}&count=100&page=2").get_json()
    assert [r["review_id"] for r in page_two["results"]] == expected_ids(rows, "relevant")[3:6]


@pytest.mark.parametrize("query,field", [
    ("", "product_id"), ("product_id=abc", "product_id"), ("product_id=0", "product_id"),
    ("product_id=-3", "product_id"), ("product_id=2147483648", "product_id"),
    ("product_id=1.5", "product_id"), ("product_id=1&page=0", "page"), ("product_id=1&count=0", "count"),
    ("product_id=1&count=x", "count"), ("product_id=1&sort=best", "sort"), ("product_id=1&sort=", "sort"),
    ("product_id=1&sort=NEWEST", "sort"),
])
def test_bad_parameters_are_422_naming_the_field(client, query, field):
    response = client.get(f"/reviews?{query}")
    assert response.status_code == 422
    body = response.get_json()
    assert set(body) == {"message", "errors"} and list(body["errors"]) == [field]
    assert all(isinstance(problem, str) for problem in body["errors"][field])


def test_the_last_page_number_answers_empty_results(client, ranked):
    product_id, _ = ranked
    response = client.get(f"/reviews?product_id={product_id}&page=2147483647&count=1000")
    assert response.status_code == 200
    assert response.get_json() == {"product": str(product_id), "page": 2147483647, "count": 1000, "results": []}
