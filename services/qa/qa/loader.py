"""Loads the three Q&A files into the qa database (`make load SERVICE=qa DATA=dir`).

One transaction: a new schema (atelier_etl.swap), schema.sql there, COPY questions, answers,
then answer photos (atelier_etl.copyload: PostgreSQL parses the clean records, Python the dirt),
indexes.sql (keys, indexes, id sequences), sequences moved past the largest loaded id, ANALYZE,
then the new schema takes the old one's place. A load replaces what the database held; running
it twice on the same folder gives the same database; until COMMIT the services read the old data.

Conversions: dates are epoch milliseconds (an ISO-8601 date has one reading too: repaired);
`reported` is 0/1. Rejected (each to <rejects>/<file>.rejects.csv with its line and a reason
"kind: detail"):
- a record with a field missing or too many ("wrong field count");
- a repeated id ("duplicate id"; the first occurrence is kept);
- an answer whose question did not load, a photo whose answer did not load ("orphan");
- an id, date, flag or count that cannot be read ("bad value").
"""
import datetime
from pathlib import Path

from atelier_common.schema import schema_sql
from atelier_etl.copyload import (COUNT, ID, TEXT, URL, FileReport, IdSet, Reject, begin_bulk_load,
                                  copy_text, load_csv, parse_reference, run_timed)
from atelier_etl.swap import open_load_schema, swap_in

FILES = ("questions.csv", "answers.csv", "answers_photos.csv")

MAX_INT = 2147483647
_FLAGS = {"0": "f", "1": "t"}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_LATEST = datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)
# The latest date accepted, in epoch milliseconds: 13 digits, compared as text.
_LATEST_MS = str((_LATEST - _EPOCH) // datetime.timedelta(milliseconds=1))


def _product_id(text: str) -> str:
    if text.isdigit() and text.isascii() and len(text) <= 10 and 0 < int(text) <= MAX_INT:
        return text
    raise Reject(f"bad value: product_id is not a valid id: {text!r}")


def _flag(text: str) -> str:
    flag = _FLAGS.get(text)
    if flag is None:
        raise Reject(f"bad value: reported is not 0 or 1: {text!r}")
    return flag


def _count(text: str) -> str:
    if text.isdigit() and text.isascii() and len(text) <= 9:
        return text
    raise Reject(f"bad value: helpful is not a whole number: {text!r}")


def _epoch_ms(text: str, repair) -> str:
    """A date as epoch milliseconds, for the loading column date_written_ms (PostgreSQL turns it
    into the timestamp). An ISO-8601 date with a zone has one reading: repaired."""
    if len(text) == 13 and text.isdigit() and text.isascii() and text <= _LATEST_MS:
        return text  # every instant from 2001-09-09 on: the data set's dates
    if text.isdigit() and text.isascii() and len(text) < 13:
        return text
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or not _EPOCH <= moment <= _LATEST:
        raise Reject(f"bad value: date_written is not epoch milliseconds: {text!r}")
    repair("date_written in ISO-8601: converted")
    return str((moment - _EPOCH) // datetime.timedelta(milliseconds=1))


# Converting tens of millions of dates costs Python (the loader's bottleneck) more than a
# microsecond each, PostgreSQL's COPY (on the other core, meanwhile) far less. So during the
# load the tables take the epoch milliseconds in a column of their own and compute
# date_written from it as a stored generated column; afterwards date_written becomes a plain
# column again and the input column is dropped (catalog-only changes: no rewrite, no scan).
_RECEIVE_EPOCH_MS = """
ALTER TABLE {table}
    DROP COLUMN date_written,
    ADD COLUMN date_written_ms bigint NOT NULL,
    ADD COLUMN date_written timestamptz NOT NULL
        GENERATED ALWAYS AS (to_timestamp(date_written_ms::float8 / 1000)) STORED
"""
_KEEP_TIMESTAMPS = """
ALTER TABLE {table}
    ALTER COLUMN date_written DROP EXPRESSION,
    DROP COLUMN date_written_ms
"""


# Clean records (atelier_etl.copyload): what PostgreSQL may read unaided. Dates: epoch
# milliseconds up to 3999999999999 (year 2096), below _LATEST_MS.
_DATE = rb"(?:[0-9]{1,12}|[0-3][0-9]{12})"
_POST = ID + b"," + ID + b"," + TEXT + b"," + _DATE + b"," + TEXT + b"," + TEXT + b",[01]," + COUNT
_CLEAN = {"questions.csv": _POST, "answers.csv": _POST, "answers_photos.csv": ID + b"," + ID + b"," + URL}


def load(conn, data_dir: Path, rejects_dir: Path, progress=None, runtime_role: str = None) -> list[FileReport]:
    data_dir, rejects_dir = Path(data_dir), Path(rejects_dir)
    questions, answers = IdSet(), IdSet()

    def parse_question(fields, repair):
        ident, product_id, body, date_written, name, email, reported, helpful = fields
        return (ident, _product_id(product_id), copy_text(body), _epoch_ms(date_written, repair), copy_text(name),
                copy_text(email), _flag(reported), _count(helpful))

    def parse_answer(fields, repair):
        ident, question_id, body, date_written, name, email, reported, helpful = fields
        return (ident, parse_reference(question_id, "question_id", questions, "question"), copy_text(body),
                _epoch_ms(date_written, repair), copy_text(name), copy_text(email), _flag(reported), _count(helpful))

    def parse_photo(fields, repair):
        ident, answer_id, url = fields
        if not url:
            raise Reject("bad value: url is empty")
        return ident, parse_reference(answer_id, "answer_id", answers, "answer"), copy_text(url)

    plan = [
        ("questions.csv", "id,product_id,body,date_written,asker_name,asker_email,reported,helpful", "question",
         ("id", "product_id", "body", "date_written_ms", "asker_name", "asker_email", "reported", "helpful"),
         parse_question, questions, ()),
        ("answers.csv", "id,question_id,body,date_written,answerer_name,answerer_email,reported,helpful", "answer",
         ("id", "question_id", "body", "date_written_ms", "answerer_name", "answerer_email", "reported", "helpful"),
         parse_answer, answers, [(1, questions)]),
        ("answers_photos.csv", "id,answer_id,url", "answer_photo", ("id", "answer_id", "url"), parse_photo, None,
         [(1, answers)]),
    ]
    reports = []
    with conn.cursor() as cur:
        begin_bulk_load(cur)
        target = open_load_schema(cur)
        cur.execute(schema_sql("qa", "schema.sql"))
        for table in ("question", "answer"):
            cur.execute(_RECEIVE_EPOCH_MS.format(table=table))
        for name, header, table, columns, parse, seen_ids, references in plan:
            reports.append(load_csv(cur, data_dir / name, header=header, table=table, columns=columns,
                                    parse=parse, rejects_dir=rejects_dir, seen_ids=seen_ids,
                                    record=_CLEAN[name], references=references, progress=progress))
        for table in ("question", "answer"):
            cur.execute(_KEEP_TIMESTAMPS.format(table=table))
        run_timed(cur, schema_sql("qa", "indexes.sql"), "keys and indexes", progress)
        for table in ("question", "answer", "answer_photo"):
            # The next POST gets the id after the largest loaded one (an empty table keeps 1).
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}")
        run_timed(cur, "ANALYZE question, answer, answer_photo", "statistics", progress)
        swap_in(cur, target, runtime_role)
    return reports
