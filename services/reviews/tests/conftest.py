"""The Ratings & Reviews tests' own fixtures (database_url, app and client: atelier_common.testing):
`db`, a direct connection to the module's database, and `helpers`."""
import json
import math
from fractions import Fraction
from types import SimpleNamespace

import psycopg2
import psycopg2.extensions
import pytest

from reviews import queries


class StatementConnection(psycopg2.extensions.connection):
    """Can run the service's prepared Statements (they remember what a connection prepared)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.prepared = set()


@pytest.fixture(scope="module")
def db(database_url):
    """A direct autocommit connection, for arranging rows and checking what the API wrote."""
    conn = psycopg2.connect(database_url.owner, connection_factory=StatementConnection)  # reads sequences
    conn.autocommit = True
    yield conn
    conn.close()


def pairs(value):
    """JSON with every object turned into its list of (key, value) pairs: compares key order too."""
    if isinstance(value, dict):
        return [(key, pairs(inner)) for key, inner in value.items()]
    if isinstance(value, list):
        return [pairs(inner) for inner in value]
    return value


def mean_text(total, count):
    """The contract's mean: exact, rounded half-up to 16 decimals, printed with all 16."""
    if not count:
        return None
    scaled = Fraction(int(total), count) * 10 ** 16
    rounded = math.floor(scaled + Fraction(1, 2))
    return f"{rounded // 10 ** 16}.{rounded % 10 ** 16:016d}"


def recompute_meta(db, product_ids=None) -> dict:
    """/reviews/meta of every product (or of `product_ids`) computed from scratch from the base
    tables (plain sum/count over non-reported reviews, the mean in exact fractions), as
    {product_id: body}."""
    only = "" if product_ids is None else "AND product_id = ANY(%(ids)s)"
    params = {"ids": list(product_ids or [])}
    expected = {}

    def body(product_id):
        return expected.setdefault(product_id, {"product_id": str(product_id), "ratings": {},
                                                "recommended": {}, "characteristics": {}})

    with db.cursor() as cur:
        cur.execute(f"""SELECT product_id, rating, count(*) FROM review
                         WHERE NOT reported {only} GROUP BY 1, 2 ORDER BY 1, 2""", params)
        for product_id, rating, count in cur.fetchall():
            body(product_id)["ratings"][str(rating)] = str(count)
        cur.execute(f"""SELECT product_id, recommend, count(*) FROM review
                         WHERE NOT reported {only} GROUP BY 1, 2 ORDER BY 1, 2""", params)
        for product_id, recommend, count in cur.fetchall():
            body(product_id)["recommended"][str(recommend).lower()] = str(count)
        cur.execute(f"""SELECT c.product_id, c.id, c.name, sum(cr.value), count(cr.value)
                          FROM characteristic c
                          LEFT JOIN (characteristic_review cr
                                     JOIN review r ON r.id = cr.review_id AND NOT r.reported)
                            ON cr.characteristic_id = c.id
                         WHERE true {only.replace('product_id', 'c.product_id')}
                         GROUP BY c.id ORDER BY c.product_id, c.id""", params)
        for product_id, ident, name, total, count in cur.fetchall():
            body(product_id)["characteristics"][name] = {"id": ident, "value": mean_text(total, count)}
    if product_ids is not None:
        for product_id in product_ids:
            body(product_id)
    return expected


def empty_meta(product_id) -> dict:
    return {"product_id": str(product_id), "ratings": {}, "recommended": {}, "characteristics": {}}


def served_meta(db, product_ids) -> dict:
    """What GET /reviews/meta answers for each product, through the service's own statements."""
    served = {}
    with db.cursor() as cur:
        for product_id in product_ids:
            row = queries.META.run(cur, (product_id,)).fetchone()
            if row is None:
                row = queries.META_WITHOUT_SUMMARY.run(cur, (product_id,)).fetchone()
            served[product_id] = json.loads(row[0])
    return served


def snapshot(db) -> dict:
    """Every row of every table and every sequence position: to show a request wrote nothing."""
    state = {}
    with db.cursor() as cur:
        for table in ("review", "review_photo", "characteristic", "characteristic_review",
                      "characteristic_tally", "review_summary"):
            cur.execute(f"SELECT * FROM {table} ORDER BY 1")
            state[table] = cur.fetchall()
        for sequence in ("review_id_seq", "review_photo_id_seq", "characteristic_review_id_seq"):
            cur.execute(f"SELECT last_value, is_called FROM {sequence}")
            state[sequence] = cur.fetchone()
    return state


@pytest.fixture
def helpers():
    """The functions above, for test modules (which cannot import conftest)."""
    return SimpleNamespace(pairs=pairs, recompute_meta=recompute_meta, empty_meta=empty_meta,
                           served_meta=served_meta, snapshot=snapshot)
