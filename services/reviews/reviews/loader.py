"""Bulk load of the four review files (`make load SERVICE=reviews DATA=dir`).

One transaction: a new schema (atelier_etl.swap), sql/schema.sql creates the bare tables there,
each file streams into COPY (atelier_etl.copyload: PostgreSQL parses the clean records, Python the
dirt, rejects and report), then sql/indexes.sql builds keys, indexes, sequences and the
per-product aggregates from the loaded rows, ANALYZE, and the new schema takes the old one's
place (the services read the old data until COMMIT).

Dirt and what becomes of it:
- dates: epoch milliseconds load as they are (review.date_ms); ISO-8601 and JavaScript
  `Date.toString()` forms are repaired to the same instant in epoch milliseconds (the latter
  through its GMT offset); anything else is rejected;
- a missing rating or one outside 1–5 → rejected (the review has no meaning without it);
- recommend/reported must be the words true/false; the bare word null as response → NULL;
- characteristics named null (or nothing) → rejected: /reviews/meta lists characteristics by
  name, and a nameless one can be neither shown nor rated by a front-end. Their
  characteristic_reviews are then rejected as orphans, like every child row whose parent
  (review or characteristic) was not loaded;
- repeated ids, wrong field counts and the byte-order mark are copyload's business.

Parse functions run once per record (19 million times for characteristic_reviews), so they do
plain string checks only and hand numbers to COPY as the digit strings they are.
"""
from datetime import datetime, timedelta, timezone

from atelier_common.schema import schema_sql
from atelier_etl.copyload import (COUNT, ID, NONEMPTY_TEXT, NULLABLE_TEXT, TEXT, URL, IdSet, Reject, begin_bulk_load,
                                  copy_text, load_csv, parse_id, parse_reference, run_timed)
from atelier_etl.swap import open_load_schema, swap_in

FILES = ("reviews.csv", "reviews_photos.csv", "characteristics.csv", "characteristic_reviews.csv")

REVIEWS_HEADER = ("id,product_id,rating,date,summary,body,recommend,reported,reviewer_name,"
                  "reviewer_email,response,helpfulness")
PHOTOS_HEADER = "id,review_id,url"
CHARACTERISTICS_HEADER = "id,product_id,name"
CHARACTERISTIC_REVIEWS_HEADER = "id,characteristic_id,review_id,value"

_ONE_TO_FIVE = frozenset("12345")
_BOOLEANS = frozenset(("true", "false"))
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MILLISECOND = timedelta(milliseconds=1)


def _epoch_ms(moment: datetime) -> str:
    return str((moment - _EPOCH) // _MILLISECOND)


def repaired_date(text: str, repair) -> str:
    """A review date not in epoch milliseconds, as epoch milliseconds; Reject if unreadable."""
    if "T" in text:  # ISO-8601, e.g. 2021-01-17T03:01:59.883Z
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            repair("date_iso: ISO-8601 date converted to epoch milliseconds")
            return _epoch_ms(moment)
    # JavaScript Date.toString(), e.g. "Wed Apr 21 2021 22:39:42 GMT-0400 (Eastern Daylight Time)":
    # local wall time plus its offset from GMT, which gives the instant.
    parts = text.split(" ", 6)
    if len(parts) >= 6 and parts[5].startswith("GMT"):
        try:
            moment = datetime.strptime(" ".join(parts[1:6]), "%b %d %Y %H:%M:%S GMT%z")
        except ValueError:
            pass
        else:
            repair("date_js: JavaScript date converted to epoch milliseconds")
            return _epoch_ms(moment)
    raise Reject(f"date_unreadable: {text!r} is neither epoch milliseconds, ISO-8601 nor a JavaScript date")


def _is_count(text: str) -> bool:
    return text.isdigit() and text.isascii() and len(text) <= 9


def parse_review(fields, repair):
    (ident, product_id, rating, date, summary, body, recommend, reported, reviewer_name,
     reviewer_email, response, helpfulness) = fields
    parse_id(product_id, "product_id")
    if rating not in _ONE_TO_FIVE:
        if rating == "":
            raise Reject("rating_missing: no rating")
        raise Reject(f"rating_out_of_range: rating {rating!r} is not 1 to 5")
    if not (date.isdigit() and date.isascii() and len(date) <= 15):
        date = repaired_date(date, repair)
    if recommend not in _BOOLEANS or reported not in _BOOLEANS:
        raise Reject(f"boolean_unreadable: recommend {recommend!r}, reported {reported!r} are not true/false")
    if not _is_count(helpfulness):
        raise Reject(f"helpfulness_unreadable: {helpfulness!r} is not a count")
    return (ident, product_id, rating, date, copy_text(summary), copy_text(body), recommend,
            reported, copy_text(reviewer_name), copy_text(reviewer_email),
            None if response == "null" else copy_text(response), helpfulness)


def review_photo_parser(reviews: IdSet):
    def parse_review_photo(fields, repair):
        parse_reference(fields[1], "review_id", reviews, "review")
        url = fields[2]
        if not url:
            raise Reject("url_missing: no url")
        return (fields[0], fields[1], copy_text(url))
    return parse_review_photo


def parse_characteristic(fields, repair):
    parse_id(fields[1], "product_id")
    name = fields[2]
    if name == "null" or not name:
        raise Reject(f"characteristic_null_name: characteristic named {name!r}")
    return (fields[0], fields[1], copy_text(name))


def characteristic_review_parser(characteristics: IdSet, reviews: IdSet):
    is_characteristic, is_review = characteristics.flags(), reviews.flags()

    def parse_characteristic_review(fields, repair):
        characteristic_id, review_id = fields[1], fields[2]
        # the common case in one expression (19 million records); the checks again for the reason
        try:
            if (fields[3] in _ONE_TO_FIVE
                    and characteristic_id.isdigit() and characteristic_id.isascii()
                    and review_id.isdigit() and review_id.isascii()
                    and is_characteristic[int(characteristic_id)] and is_review[int(review_id)]):
                return fields  # four digit strings, checked: COPY takes them as they are
        except IndexError:  # beyond the highest id loaded
            pass
        if fields[3] not in _ONE_TO_FIVE:
            raise Reject(f"value_out_of_range: value {fields[3]!r} is not 1 to 5")
        parse_reference(characteristic_id, "characteristic_id", characteristics, "characteristic")
        parse_reference(review_id, "review_id", reviews, "review")
        raise AssertionError("unreachable: a check above rejects the record")
    return parse_characteristic_review


# Clean records (atelier_etl.copyload): what PostgreSQL may read unaided.
_BOOLEAN = rb"(?:true|false)"
_CLEAN_REVIEW = (ID + b"," + ID + b",[1-5],[0-9]{1,15}," + TEXT + b"," + TEXT + b"," + _BOOLEAN + b"," + _BOOLEAN
                 + b"," + TEXT + b"," + TEXT + b"," + NULLABLE_TEXT + b"," + COUNT)
_CLEAN_PHOTO = ID + b"," + ID + b"," + URL
_CLEAN_CHARACTERISTIC = ID + b"," + ID + b',"(?!null")' + NONEMPTY_TEXT[1:]
_CLEAN_CHARACTERISTIC_REVIEW = ID + b"," + ID + b"," + ID + b",[1-5]"


def load(conn, data_dir, rejects_dir, progress=None, runtime_role: str = None):
    reviews, characteristics = IdSet(), IdSet()
    with conn.cursor() as cur:
        begin_bulk_load(cur)
        target = open_load_schema(cur)
        cur.execute(schema_sql("reviews", "schema.sql"))
        reports = [
            load_csv(cur, data_dir / "reviews.csv", header=REVIEWS_HEADER, table="review",
                     columns=("id", "product_id", "rating", "date_ms", "summary", "body", "recommend",
                              "reported", "reviewer_name", "reviewer_email", "response", "helpfulness"),
                     parse=parse_review, rejects_dir=rejects_dir, seen_ids=reviews,
                     record=_CLEAN_REVIEW, progress=progress),
            load_csv(cur, data_dir / "reviews_photos.csv", header=PHOTOS_HEADER, table="review_photo",
                     columns=("id", "review_id", "url"), parse=review_photo_parser(reviews),
                     rejects_dir=rejects_dir, record=_CLEAN_PHOTO, references=[(1, reviews)], progress=progress),
            load_csv(cur, data_dir / "characteristics.csv", header=CHARACTERISTICS_HEADER,
                     table="characteristic", columns=("id", "product_id", "name"),
                     parse=parse_characteristic, rejects_dir=rejects_dir, seen_ids=characteristics,
                     record=_CLEAN_CHARACTERISTIC, progress=progress),
            load_csv(cur, data_dir / "characteristic_reviews.csv", header=CHARACTERISTIC_REVIEWS_HEADER,
                     table="characteristic_review",
                     columns=("id", "characteristic_id", "review_id", "value"),
                     parse=characteristic_review_parser(characteristics, reviews),
                     rejects_dir=rejects_dir, record=_CLEAN_CHARACTERISTIC_REVIEW,
                     references=[(1, characteristics), (2, reviews)], progress=progress),
        ]
        # indexes.sql statement by statement, to report progress (index builds take a while)
        for statement in _statements(schema_sql("reviews", "indexes.sql")):
            run_timed(cur, statement, " ".join(statement.split())[:48], progress)
        run_timed(cur, "ANALYZE review, review_photo, characteristic, characteristic_review, "
                  "characteristic_tally, review_summary", "statistics", progress)
        swap_in(cur, target, runtime_role)
    return reports


def _statements(script: str):
    """The statements of an SQL file: split at a `;` ending a line, outside $$ bodies."""
    pending = []
    for line in script.splitlines():
        if line.startswith("--") or not (pending or line.strip()):
            continue
        pending.append(line)
        text = "\n".join(pending)
        if line.rstrip().endswith(";") and text.count("$$") % 2 == 0:
            yield text
            pending = []
    if "\n".join(pending).strip():
        yield "\n".join(pending)
