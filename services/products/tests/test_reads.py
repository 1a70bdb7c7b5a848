"""The four Products endpoints on rows these tests write themselves (through SQL, as a load
would leave them), compared value for value and key for key with the contract."""
import json
from contextlib import closing

import psycopg2
import pytest

from products import create_app

# Small, so that the clamp shows with a handful of rows.
MAX_PAGE_COUNT = 3


@pytest.fixture(scope="module")
def app(database_url):
    return create_app({"database_url": database_url, "max_page_count": MAX_PAGE_COUNT})

# Ids deliberately out of insertion order and not contiguous: every list must come back in id order.
PRODUCTS = [
    # id, name, slogan, description, category, default_price (as stored)
    (11, "Air Minis 250", "Full court support", "This optimized air cushion ...", "Basketball Shoes", "0"),
    (1, "Camo Onesie", "Blend in to your crowd", "The So Fatigues will wake you up ...", "Jackets", "140"),
    (4, 'Ünïcode "quoted", comma', "line\nbreak\ttab \\ backslash", "", "Pants", "818.5"),
    (7, "Bright Future Sunglasses", "You've got to see it", "Where you're going ...", "Accessories", "69"),
    (20, "Heir Force Ones", "A sneaker dynasty", "Now where da boxes where I keep mine?", "Kicks", "99"),
]
FEATURES = [  # id, product_id, feature, value
    (3, 11, "Material", None),
    (2, 11, "Sole", "Rubber"),
    (5, 1, "Fabric", "Canvas"),
]
STYLES = [  # id, product_id, name, sale_price, original_price, default_style
    (9, 1, "Desert Brown & Tan", "100", "140", False),
    (8, 1, "Forest Green & Black", None, "140", True),
    (12, 11, "White", "0", "0", True),
]
PHOTOS = [  # id, style_id, url, thumbnail_url
    (31, 8, "https://img.example/b.jpg", "https://img.example/b-thumb.jpg"),
    (30, 8, "https://img.example/a.jpg", "https://img.example/a-thumb.jpg"),
    (32, 12, "https://img.example/c.jpg", "https://img.example/c-thumb.jpg"),
]
SKUS = [  # id, style_id, size, quantity
    (38, 8, "S", 16),
    (37, 8, "XS", 8),
    (40, 12, "7.5", 0),
]
RELATED = [  # id, product_id, related_product_id: the order is the rows' id order
    (50, 1, 4),
    (51, 1, 0),    # never shown
    (52, 1, 1),    # the product itself: never shown
    (53, 1, 11),
    (54, 1, 4),    # a repeat: shown once, where it first appears
    (55, 1, 7),
    (56, 11, 0),
]


def price(text):
    return f"{float(text):.2f}"


def expected_summary(product):
    ident, name, slogan, description, category, default_price = product
    return {"id": ident, "name": name, "slogan": slogan, "description": description,
            "category": category, "default_price": price(default_price)}


def expected_detail(product):
    features = [{"feature": f[2], "value": f[3]} for f in sorted(FEATURES) if f[1] == product[0]]
    return {**expected_summary(product), "features": features}


def expected_styles(product_id):
    results = []
    for style_id, owner, name, sale_price, original_price, default in sorted(STYLES):
        if owner != product_id:
            continue
        photos = [{"thumbnail_url": p[3], "url": p[2]} for p in sorted(PHOTOS) if p[1] == style_id]
        skus = {str(k[0]): {"quantity": k[3], "size": k[2]} for k in sorted(SKUS) if k[1] == style_id}
        results.append({
            "style_id": style_id, "name": name, "original_price": price(original_price),
            "sale_price": None if sale_price is None else price(sale_price), "default?": default,
            "photos": photos or [{"thumbnail_url": None, "url": None}],
            "skus": skus or {"null": {"quantity": None, "size": None}},
        })
    return {"product_id": str(product_id), "results": results}


def expected_related(product_id):
    shown = []
    for _, owner, related in sorted(RELATED):
        if owner == product_id and related not in (0, product_id) and related not in shown:
            shown.append(related)
    return shown


def ordered(value):
    """JSON value with every object as a list of (key, value) pairs: comparing these compares
    key order too."""
    if isinstance(value, dict):
        return [(key, ordered(inner)) for key, inner in value.items()]
    if isinstance(value, list):
        return [ordered(inner) for inner in value]
    return value


def body_pairs(response):
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return json.loads(response.get_data(as_text=True), object_pairs_hook=list)


@pytest.fixture(scope="module", autouse=True)
def catalogue(database_url):
    with closing(psycopg2.connect(database_url)) as conn, conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO product VALUES (%s, %s, %s, %s, %s, %s)", PRODUCTS)
        cur.executemany("INSERT INTO feature VALUES (%s, %s, %s, %s)", FEATURES)
        cur.executemany("INSERT INTO style VALUES (%s, %s, %s, %s, %s, %s)", STYLES)
        cur.executemany("INSERT INTO photo VALUES (%s, %s, %s, %s)", PHOTOS)
        cur.executemany("INSERT INTO sku VALUES (%s, %s, %s, %s)", SKUS)
        cur.executemany("INSERT INTO related VALUES (%s, %s, %s)", RELATED)


def by_id(ident):
    return next(p for p in PRODUCTS if p[0] == ident)


# -- GET /products/:id ------------------------------------------------------------------------

@pytest.mark.parametrize("product_id", [p[0] for p in PRODUCTS])
def test_product_detail_is_the_product_with_its_features_in_id_order(client, product_id):
    response = client.get(f"/products/{product_id}")
    assert body_pairs(response) == ordered(expected_detail(by_id(product_id)))


def test_product_detail_values_and_types(client):
    body = client.get("/products/11").get_json()
    assert body["default_price"] == "0.00"
    assert body["features"] == [{"feature": "Sole", "value": "Rubber"}, {"feature": "Material", "value": None}]
    assert client.get("/products/4").get_json()["default_price"] == "818.50"


# -- GET /products/:id/styles -----------------------------------------------------------------

@pytest.mark.parametrize("product_id", [p[0] for p in PRODUCTS])
def test_styles_match_the_contract_key_for_key(client, product_id):
    response = client.get(f"/products/{product_id}/styles")
    assert body_pairs(response) == ordered(expected_styles(product_id))


def test_styles_types_and_placeholders(client):
    body = client.get("/products/1/styles").get_json()
    assert body["product_id"] == "1"
    first, second = body["results"]
    assert (first["style_id"], first["sale_price"], first["default?"]) == (8, None, True)
    assert first["photos"] == [{"thumbnail_url": "https://img.example/a-thumb.jpg", "url": "https://img.example/a.jpg"},
                               {"thumbnail_url": "https://img.example/b-thumb.jpg", "url": "https://img.example/b.jpg"}]
    assert list(first["skus"]) == ["37", "38"]
    assert (second["style_id"], second["sale_price"], second["original_price"]) == (9, "100.00", "140.00")
    assert second["photos"] == [{"thumbnail_url": None, "url": None}]
    assert second["skus"] == {"null": {"quantity": None, "size": None}}
    assert client.get("/products/7/styles").get_json() == {"product_id": "7", "results": []}


# -- GET /products/:id/related ----------------------------------------------------------------

def test_related_keeps_row_order_without_zero_self_or_repeats(client):
    assert body_pairs(client.get("/products/1/related")) == [4, 11, 7] == expected_related(1)


@pytest.mark.parametrize("product_id", [11, 4])
def test_related_is_an_empty_array_when_nothing_is_left(client, product_id):
    assert body_pairs(client.get(f"/products/{product_id}/related")) == []


# -- GET /products ----------------------------------------------------------------------------

def test_products_default_page_is_the_first_five_in_id_order(client):
    # MAX_PAGE_COUNT (3) clamps the default count of 5 in this app: use a fresh app for defaults.
    default_app = create_app({"database_url": client.application.config["SETTINGS"].database_url})
    response = default_app.test_client().get("/products")
    assert body_pairs(response) == ordered([expected_summary(p) for p in sorted(PRODUCTS)][:5])


@pytest.mark.parametrize("page, count", [(1, 2), (2, 2), (3, 2), (4, 2), (2, 1), (1, MAX_PAGE_COUNT)])
def test_products_pages(client, page, count):
    response = client.get(f"/products?page={page}&count={count}")
    rows = sorted(PRODUCTS)[(page - 1) * count:page * count]
    assert body_pairs(response) == ordered([expected_summary(p) for p in rows])


@pytest.mark.parametrize("count", [MAX_PAGE_COUNT + 1, 999999999, 2147483647])
def test_products_count_above_the_maximum_is_clamped(client, count):
    ids = [p["id"] for p in client.get(f"/products?count={count}&page=2").get_json()]
    assert ids == sorted(p[0] for p in PRODUCTS)[MAX_PAGE_COUNT:2 * MAX_PAGE_COUNT]


def test_products_page_past_the_end_and_extra_parameters(client):
    assert body_pairs(client.get("/products?page=2147483647&count=3")) == []
    assert [p["id"] for p in client.get("/products?count=1&product_id=abc&sort=x").get_json()] == [1]


@pytest.mark.parametrize("query, field", [
    ("page=0", "page"), ("page=-1", "page"), ("page=abc", "page"), ("page=1.5", "page"),
    ("page=2147483648", "page"), ("count=0", "count"), ("count=x", "count"), ("count=", "count"),
    ("count=99999999999999", "count"),
])
def test_products_bad_paging_is_422_naming_the_field(client, query, field):
    response = client.get(f"/products?{query}")
    assert response.status_code == 422
    body = response.get_json()
    assert set(body) == {"message", "errors"} and list(body["errors"]) == [field]


# -- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["", "/styles", "/related"])
@pytest.mark.parametrize("product_id", [2, 999, 2147483647])
def test_unknown_product_is_404(client, product_id, suffix):
    response = client.get(f"/products/{product_id}{suffix}")
    assert response.status_code == 404
    assert response.get_json() == {"message": "product not found"}


@pytest.mark.parametrize("suffix", ["", "/styles", "/related"])
@pytest.mark.parametrize("raw", ["abc", "0", "-1", "1.5", "2147483648", "99999999999", "%201"])
def test_bad_product_id_is_422_naming_product_id(client, raw, suffix):
    response = client.get(f"/products/{raw}{suffix}")
    assert response.status_code == 422
    body = response.get_json()
    assert isinstance(body["message"], str) and list(body["errors"]) == ["product_id"]


def test_trailing_slash_and_cors_on_products_paths(client):
    assert client.get("/products/1/styles/").get_data() == client.get("/products/1/styles").get_data()
    assert client.get("/products/?count=2").get_json() == client.get("/products?count=2").get_json()
    for path in ("/products/1", "/products/1/related/", "/products/999", "/products/abc"):
        assert client.get(path).headers["Access-Control-Allow-Origin"] == "*"
    preflight = client.options("/products/1/styles", headers={"Origin": "https://shop.example"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"


def test_documents_follow_later_writes(client, database_url):
    """Rows written after the load (here: by SQL) show at once: the documents are kept current."""
    with closing(psycopg2.connect(database_url)) as conn, conn, conn.cursor() as cur:
        cur.execute("INSERT INTO product VALUES (30, 'Later', 'S', 'D', 'C', 5)")
        cur.execute("INSERT INTO style VALUES (60, 30, 'Only', NULL, 5, false)")
        cur.execute("INSERT INTO sku VALUES (70, 60, 'M', 3)")
        cur.execute("INSERT INTO related VALUES (80, 30, 1)")
    try:
        assert client.get("/products/30/styles").get_json()["results"][0]["skus"] == {"70": {"quantity": 3, "size": "M"}}
        assert client.get("/products/30/related").get_json() == [1]
        with closing(psycopg2.connect(database_url)) as conn, conn, conn.cursor() as cur:
            cur.execute("UPDATE sku SET quantity = 4 WHERE id = 70")
            cur.execute("DELETE FROM related WHERE id = 80")
        assert client.get("/products/30/styles").get_json()["results"][0]["skus"]["70"]["quantity"] == 4
        assert client.get("/products/30/related").get_json() == []
    finally:
        with closing(psycopg2.connect(database_url)) as conn, conn, conn.cursor() as cur:
            cur.execute("DELETE FROM sku WHERE id = 70; DELETE FROM style WHERE id = 60; DELETE FROM product WHERE id = 30")
    assert client.get("/products/30").status_code == 404
