"""The Ratings & Reviews endpoints: thin views; SQL lives in queries.py, validation in schemas.py.

Reads pass PostgreSQL's JSON text through untouched. Writes run in one transaction that also
keeps the product's aggregates exact (see queries.py for the locking order)."""
from flask import Blueprint, request
from marshmallow import ValidationError

from atelier_common import idempotency
from atelier_common.db import fetch_row, fetch_value, transaction
from atelier_common.errors import not_found
from atelier_common.http import changed, created, json_bytes, no_content
from atelier_common.validation import load_json_body, load_query, path_id

from . import queries, schemas

bp = Blueprint("reviews", __name__)
# Each view's name is its route name: the label of its metrics, its k6 tag, its row in benchmarks.


@bp.get("/reviews")
def reviews_list():
    query = load_query(schemas.REVIEWS_PAGE, request.args)
    statement = queries.REVIEW_PAGES[query["sort"]]
    return json_bytes(fetch_value(statement, (query["product_id"], query["page"], query["count"],
                                              query["offset"])))


@bp.get("/reviews/meta")
def reviews_meta():
    product_id = load_query(schemas.META, request.args)["product_id"]
    body = fetch_value(queries.META, (product_id,))
    if body is None:
        body = fetch_value(queries.META_WITHOUT_SUMMARY, (product_id,))
    return json_bytes(body)


class _KeyTaken(Exception):
    """The Idempotency-Key was live by the time the review's transaction claimed it."""


@bp.post("/reviews")
def reviews_post():
    review = load_json_body(schemas.NEW_REVIEW, request)
    key = idempotency.request_key()
    if key is None:
        return _new_review(review)
    fingerprint = idempotency.fingerprint()
    remembered = fetch_row(idempotency.LOOKUP, (key,))
    if remembered is None:
        try:
            return _new_review(review, key, fingerprint)
        except _KeyTaken:  # a concurrent duplicate committed first: its answer, nothing written
            remembered = fetch_row(idempotency.LOOKUP, (key,))
    return idempotency.replay(remembered, fingerprint)


def _new_review(review, key=None, fingerprint=None):
    product_id = review["product_id"]
    characteristic_ids = list(review["characteristics"])
    with transaction() as cur:
        if characteristic_ids:
            found = queries.COUNT_PRODUCT_CHARACTERISTICS.run(
                cur, (product_id, characteristic_ids)).fetchone()[0]
            if found != len(characteristic_ids):
                raise ValidationError(
                    {"characteristics": [f"Every key must be a characteristic id of product {product_id}."]})
        queries.COUNT_NEW_REVIEW.run(cur, (product_id, review["rating"], review["recommend"]))
        review_id = queries.INSERT_REVIEW.run(cur, (
            product_id, review["rating"], review["summary"], review["body"], review["recommend"],
            review["name"], review["email"], review["photos"], characteristic_ids,
            list(review["characteristics"].values()))).fetchone()[0]
        queries.REBUILD_META.run(cur, (product_id,))
        location = f"/reviews/{review_id}"
        if key is not None and queries.CLAIM_KEY.run(cur, (key, fingerprint, location, product_id)).fetchone() is None:
            raise _KeyTaken()  # rolls the review back
    idempotency.fault_after_commit()
    return created(location, changed(product_id))


@bp.put("/reviews/<raw_id>/helpful")
def reviews_helpful(raw_id):
    product_id = fetch_value(queries.MARK_HELPFUL, (path_id("review_id", raw_id),))
    if product_id is None:
        raise not_found("review")
    return no_content(changed(product_id))


@bp.put("/reviews/<raw_id>/report")
def reviews_report(raw_id):
    review_id = path_id("review_id", raw_id)
    with transaction() as cur:
        row = queries.REPORT_REVIEW.run(cur, (review_id,)).fetchone()
        if row is not None:
            queries.UNTALLY_REVIEW.run(cur, (review_id,))
            queries.REBUILD_META.run(cur, (row[0],))
        elif not queries.REVIEW_EXISTS.run(cur, (review_id,)).fetchone()[0]:
            raise not_found("review")
    # A review reported before changes nothing: no view to refresh.
    return no_content(changed(row[0]) if row is not None else None)
