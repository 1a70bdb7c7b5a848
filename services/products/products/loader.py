"""Loads the six catalogue files into the products database (`make load SERVICE=products DATA=dir`).

One transaction: a new schema (atelier_etl.swap), schema.sql there, COPY each file in
parent-before-child order (atelier_etl.copyload: PostgreSQL parses the clean records, Python the
dirt), ANALYZE, indexes.sql (keys, indexes, sequences, the per-product JSON documents), ANALYZE
again, then the new schema takes the old one's place. Running it twice on the same folder gives
the same database; until COMMIT the services read the old data.

What happens to the dirt of data.md (every reject goes to <rejects>/<file>.rejects.csv with its
line and reason, as "kind: detail"):
- prices written " 140" or "$818": repaired (one correct reading), counted as repaired;
- a photo without thumbnail_url (empty, or the column missing altogether): repaired with its url;
- a photo whose thumbnail_url lacks its closing quote: a URL never holds a line break, so
  photos.csv is read one physical line per record: the open quote ends at the line break
  (repaired, counted as "unclosed_quote") and the next line is its own record, loaded too;
- a record with a field missing (its columns shift): rejected ("wrong field count");
- a repeated id: rejected ("duplicate id"), the first occurrence is kept;
- a child row whose parent did not load (a feature, style or related row without its product, a
  photo or sku without its style): rejected ("orphan");
- related rows pointing at 0 or at the product itself: rejected ("related_zero", "related_self");
  rejecting keeps the table true to what /related shows. A related row pointing at a product
  that did not load is an orphan too. Repeated (product, related product) pairs are valid
  rows and are kept; /related shows each related product once (the documents drop repeats).
"""
import re
from pathlib import Path

from atelier_common.schema import schema_sql
from atelier_etl.copyload import (COUNT, ID, NULLABLE_TEXT, TEXT, URL, FileReport, IdSet, Reject,
                                  begin_bulk_load, copy_text, load_csv, parse_reference, run_timed)
from atelier_etl.swap import open_load_schema, swap_in

FILES = ("product.csv", "features.csv", "styles.csv", "photos.csv", "skus.csv", "related.csv")

_PRICE = re.compile(r"\s*\$?\s*([0-9]{1,10})(?:\.([0-9]{1,2}))?\s*")
_BOOLEANS = {"1": "t", "0": "f", "true": "t", "false": "f"}


def _price(text: str, column: str, repair) -> str:
    if text.isdigit() and text.isascii() and len(text) <= 10:
        return text
    match = _PRICE.fullmatch(text)
    if match is None:
        raise Reject(f"bad price: {column} {text!r} is not an amount")
    repair(f"{column} written with spaces or $")
    whole, cents = match.groups()
    return f"{whole}.{cents}" if cents else whole


def _quantity(text: str) -> str:
    if text.isdigit() and text.isascii() and len(text) <= 9:
        return text
    raise Reject(f"bad value: quantity is not a whole number: {text!r}")


# Clean records (atelier_etl.copyload): what PostgreSQL may read unaided. Prices are plain digits.
_PRICE_DIGITS = rb"[0-9]{1,10}"
_CLEAN = {
    "product.csv": ID + b"," + TEXT + b"," + TEXT + b"," + TEXT + b"," + TEXT + b"," + _PRICE_DIGITS,
    "features.csv": ID + b"," + ID + b"," + TEXT + b"," + NULLABLE_TEXT,
    "styles.csv": ID + b"," + ID + b"," + TEXT + b",(?:null|" + _PRICE_DIGITS + b")," + _PRICE_DIGITS + b",[01]",
    "photos.csv": ID + b"," + ID + b"," + URL + b"," + URL,
    "skus.csv": ID + b"," + ID + b"," + TEXT + b"," + COUNT,
    "related.csv": ID + b"," + ID + b"," + ID,
}


def _related_to_itself(values):
    return values[1] == values[2]


def load(conn, data_dir: Path, rejects_dir: Path, progress=None, runtime_role: str = None) -> list[FileReport]:
    data_dir, rejects_dir = Path(data_dir), Path(rejects_dir)
    products, styles = IdSet(), IdSet()

    def parse_product(fields, repair):
        ident, name, slogan, description, category, price = fields
        return (ident, copy_text(name), copy_text(slogan), copy_text(description), copy_text(category),
                _price(price, "default_price", repair))

    def parse_feature(fields, repair):
        ident, product_id, feature, value = fields
        return (ident, parse_reference(product_id, "product_id", products, "product"), copy_text(feature),
                None if value == "null" else copy_text(value))

    def parse_style(fields, repair):
        ident, product_id, name, sale_price, original_price, default_style = fields
        default = _BOOLEANS.get(default_style)
        if default is None:
            raise Reject(f"bad value: default_style is not 1 or 0: {default_style!r}")
        return (ident, parse_reference(product_id, "productId", products, "product"), copy_text(name),
                None if sale_price == "null" else _price(sale_price, "sale_price", repair),
                _price(original_price, "original_price", repair), default)

    def parse_photo(fields, repair):
        # Called for every field count (check_width=False): a missing thumbnail_url has its own
        # outcome. photos.csv is read a physical line per record, so an unclosed quote (repaired
        # by copyload) cannot swallow the next line.
        if len(fields) == 4:
            ident, style_id, url, thumbnail_url = fields
        elif len(fields) == 3:
            ident, style_id, url = fields
            thumbnail_url = ""
        else:
            raise Reject(f"wrong field count: expected 4 fields, found {len(fields)}")
        if not url:
            raise Reject("bad value: url is empty")
        if not thumbnail_url:
            repair("thumbnail_url missing: set to the photo's url")
            thumbnail_url = url
        return (ident, parse_reference(style_id, "styleId", styles, "style"), copy_text(url), copy_text(thumbnail_url))

    def parse_sku(fields, repair):
        ident, style_id, size, quantity = fields
        return (ident, parse_reference(style_id, "styleId", styles, "style"), copy_text(size), _quantity(quantity))

    def parse_related(fields, repair):
        ident, product_id, related_id = fields
        if related_id == "0":
            raise Reject("related_zero: related_product_id is 0")
        if related_id == product_id:
            raise Reject(f"related_self: product {product_id} is related to itself")
        return (ident, parse_reference(product_id, "current_product_id", products, "product"),
                parse_reference(related_id, "related_product_id", products, "product"))

    plan = [
        ("product.csv", "id,name,slogan,description,category,default_price", "product",
         ("id", "name", "slogan", "description", "category", "default_price"), parse_product, products,
         dict()),
        ("features.csv", "id,product_id,feature,value", "feature",
         ("id", "product_id", "feature", "value"), parse_feature, None, dict(references=[(1, products)])),
        ("styles.csv", "id,productId,name,sale_price,original_price,default_style", "style",
         ("id", "product_id", "name", "sale_price", "original_price", "default_style"), parse_style, styles,
         dict(references=[(1, products)])),
        ("photos.csv", "id,styleId,url,thumbnail_url", "photo",
         ("id", "style_id", "url", "thumbnail_url"), parse_photo, None,
         dict(references=[(1, styles)], check_width=False, one_line_records=True)),
        ("skus.csv", "id,styleId,size,quantity", "sku",
         ("id", "style_id", "size", "quantity"), parse_sku, None, dict(references=[(1, styles)])),
        ("related.csv", "id,current_product_id,related_product_id", "related",
         ("id", "product_id", "related_product_id"), parse_related, None,
         dict(references=[(1, products), (2, products)], vector_check=_related_to_itself)),
    ]
    reports = []
    with conn.cursor() as cur:
        begin_bulk_load(cur)
        target = open_load_schema(cur)
        cur.execute(schema_sql("products", "schema.sql"))
        for name, header, table, columns, parse, seen_ids, options in plan:
            reports.append(load_csv(cur, data_dir / name, header=header, table=table, columns=columns,
                                    parse=parse, rejects_dir=rejects_dir, seen_ids=seen_ids,
                                    record=_CLEAN[name], progress=progress, **options))
        # Statistics first: indexes.sql builds the documents with a query that needs them.
        run_timed(cur, "ANALYZE product, feature, style, photo, sku, related", "statistics", progress)
        run_timed(cur, schema_sql("products", "indexes.sql"), "keys, indexes, sequences, documents",
                  progress)
        run_timed(cur, "ANALYZE product_document", "statistics of the documents", progress)
        swap_in(cur, target, runtime_role)
    return reports
