"""The Products endpoints: thin views; SQL lives in queries.py, validation in schemas.py.

PostgreSQL returns each body as JSON text; the views pass it through untouched."""
from flask import Blueprint, request

from atelier_common.db import fetch_value
from atelier_common.errors import not_found
from atelier_common.http import json_bytes
from atelier_common.validation import load_query, path_id

from . import queries, schemas

bp = Blueprint("products", __name__)
# Each view's name is its route name: the label of its metrics, its k6 tag, its row in benchmarks.


@bp.get("/products")
def products_list():
    page = load_query(schemas.PRODUCTS_PAGE, request.args)
    return json_bytes(fetch_value(queries.PRODUCTS_PAGE, (page["count"], page["offset"])))


def _product_document(statement, raw_id: str):
    body = fetch_value(statement, (path_id("product_id", raw_id),))
    if body is None:
        raise not_found("product")
    return json_bytes(body)


@bp.get("/products/<raw_id>")
def product(raw_id):
    return _product_document(queries.PRODUCT, raw_id)


@bp.get("/products/<raw_id>/styles")
def product_styles(raw_id):
    return _product_document(queries.PRODUCT_STYLES, raw_id)


@bp.get("/products/<raw_id>/related")
def product_related(raw_id):
    return _product_document(queries.PRODUCT_RELATED, raw_id)
