"""The Questions & Answers endpoints: thin views; SQL lives in queries.py, validation in schemas.py."""
from flask import Blueprint, request

from atelier_common.db import Statement, fetch_row, fetch_value
from atelier_common import idempotency
from atelier_common.errors import not_found
from atelier_common.http import changed, created, json_bytes, no_content
from atelier_common.validation import load_json_body, load_query, path_id

from . import queries, schemas

bp = Blueprint("qa", __name__)
# Each view's name is its route name: the label of its metrics, its k6 tag, its row in benchmarks.


@bp.get("/qa/questions")
def qa_questions():
    query = load_query(schemas.question_list_query, request.args)
    return json_bytes(fetch_value(queries.QUESTIONS, (query["product_id"], query["count"], query["offset"])))


@bp.get("/qa/questions/<question_id>/answers")
def qa_answers(question_id):
    question_id = path_id("question_id", question_id)
    query = load_query(schemas.answer_list_query, request.args)
    return json_bytes(fetch_value(queries.ANSWERS, (question_id, query["page"], query["count"], query["offset"])))


@bp.post("/qa/questions")
def qa_question_post():
    body = load_json_body(schemas.question_body, request)
    params = (body["product_id"], body["body"], body["name"], body["email"])
    key = idempotency.request_key()
    if key is None:
        new_id = fetch_value(queries.INSERT_QUESTION, params)
    else:  # the same statement, remembering its answer under the key (or replaying it)
        fingerprint = idempotency.fingerprint()
        new_id = fetch_value(queries.INSERT_QUESTION_ONCE, params + (key, fingerprint))
        if new_id is None:
            return idempotency.replay(fetch_row(idempotency.LOOKUP, (key,)), fingerprint)
    idempotency.fault_after_commit()
    return created(f"/qa/questions/{new_id}", changed(product_id=body["product_id"]))


@bp.post("/qa/questions/<question_id>/answers")
def qa_answer_post(question_id):
    question_id = path_id("question_id", question_id)
    body = load_json_body(schemas.answer_body, request)
    params = (question_id, body["body"], body["name"], body["email"], body["photos"])
    key = idempotency.request_key()
    if key is None:
        row = fetch_row(queries.INSERT_ANSWER, params)
    else:
        fingerprint = idempotency.fingerprint()
        row = fetch_row(queries.INSERT_ANSWER_ONCE, params + (key, fingerprint))
        if row is None:
            remembered = fetch_row(idempotency.LOOKUP, (key,))
            if remembered is not None:
                return idempotency.replay(remembered, fingerprint)
    if row is None:
        raise not_found("question")
    new_id, product_id = row
    idempotency.fault_after_commit()
    return created(f"/qa/answers/{new_id}", changed(product_id, question_id))


def _mark(statement: Statement, field: str, what: str, raw_id: str):
    """The four PUTs: one UPDATE of an existing row; the request body is never read."""
    row = fetch_row(statement, (path_id(field, raw_id),))
    if row is None:
        raise not_found(what)
    product_id, question_id = row
    return no_content(changed(product_id, question_id))


@bp.put("/qa/questions/<question_id>/helpful")
def qa_question_helpful(question_id):
    return _mark(queries.MARK_QUESTION_HELPFUL, "question_id", "question", question_id)


@bp.put("/qa/questions/<question_id>/report")
def qa_question_report(question_id):
    return _mark(queries.REPORT_QUESTION, "question_id", "question", question_id)


@bp.put("/qa/answers/<answer_id>/helpful")
def qa_answer_helpful(answer_id):
    return _mark(queries.MARK_ANSWER_HELPFUL, "answer_id", "answer", answer_id)


@bp.put("/qa/answers/<answer_id>/report")
def qa_answer_report(answer_id):
    return _mark(queries.REPORT_ANSWER, "answer_id", "answer", answer_id)
