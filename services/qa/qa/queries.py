"""All SQL of the Questions & Answers service.

Reads build the whole response body in PostgreSQL (json_build_object keeps the contract's key
order) and return it as one text value the view passes through untouched. Every parameter is
cast where it first appears, so PREPARE infers the intended types.
"""
from atelier_common.cache_listener import notify_changed
from atelier_common.db import Statement

# The contract's date format: ISO-8601 UTC with milliseconds. The colons are quoted literals
# ("HH24":"MI", same output) because pgbench, which the benchmark runs these statements with,
# would read :MI and :SS as its own variables.
_DATE = """to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":"MI":"SS.MS"Z"')"""

# $1 product_id, $2 count, $3 offset. A page of the product's visible questions (an index range
# of question_product_idx), each with every visible answer keyed by answer id, in answer-id
# order, and each answer's photo URLs in photo-id order.
QUESTIONS = Statement("qa_questions", f"""
SELECT json_build_object(
    'product_id', $1::integer::text,
    'results', coalesce(json_agg(page.question ORDER BY page.helpful DESC, page.id), '[]'::json)
)::text
FROM (
    SELECT q.id, q.helpful, json_build_object(
        'question_id', q.id,
        'question_body', q.body,
        'question_date', {_DATE.format(column="q.date_written")},
        'asker_name', q.asker_name,
        'question_helpfulness', q.helpful,
        'reported', q.reported,
        'answers', coalesce((
            SELECT json_object_agg(a.id, json_build_object(
                'id', a.id,
                'body', a.body,
                'date', {_DATE.format(column="a.date_written")},
                'answerer_name', a.answerer_name,
                'helpfulness', a.helpful,
                'photos', coalesce((
                    SELECT json_agg(p.url ORDER BY p.id)
                    FROM answer_photo p
                    WHERE p.answer_id = a.id), '[]'::json)
            ) ORDER BY a.id)
            FROM answer a
            WHERE a.question_id = q.id AND NOT a.reported), '{{}}'::json)
    ) AS question
    FROM question q
    WHERE q.product_id = $1 AND NOT q.reported
    ORDER BY q.helpful DESC, q.id
    LIMIT $2::integer OFFSET $3::bigint
) page
""")

# $1 question_id, $2 page, $3 count, $4 offset. A page of a visible question's visible answers
# (an index range of answer_question_idx); photos as {id, url} in photo-id order. A reported
# question shows no answers.
ANSWERS = Statement("qa_answers", f"""
SELECT json_build_object(
    'question', $1::integer::text,
    'page', $2::integer,
    'count', $3::integer,
    'results', coalesce(json_agg(page.answer ORDER BY page.helpful DESC, page.id), '[]'::json)
)::text
FROM (
    SELECT a.id, a.helpful, json_build_object(
        'answer_id', a.id,
        'body', a.body,
        'date', {_DATE.format(column="a.date_written")},
        'answerer_name', a.answerer_name,
        'helpfulness', a.helpful,
        'photos', coalesce((
            SELECT json_agg(json_build_object('id', p.id, 'url', p.url) ORDER BY p.id)
            FROM answer_photo p
            WHERE p.answer_id = a.id), '[]'::json)
    ) AS answer
    FROM answer a
    WHERE a.question_id = $1 AND NOT a.reported
      AND EXISTS (SELECT FROM question q WHERE q.id = $1 AND NOT q.reported)
    ORDER BY a.helpful DESC, a.id
    LIMIT $3 OFFSET $4::bigint
) page
""")

# Every write publishes the views it changed (its X-Invalidates keys) in the same statement:
# PostgreSQL delivers the notification to every balancer's cache listener once it commits.

# $1 product_id, $2 body, $3 name, $4 email → the new question's id.
INSERT_QUESTION = Statement("qa_insert_question", f"""
WITH new_question AS (
    INSERT INTO question (product_id, body, date_written, asker_name, asker_email)
    VALUES ($1::integer, $2::text, now(), $3::text, $4::text)
    RETURNING id, product_id
)
SELECT new_question.id FROM new_question, {notify_changed("new_question.product_id")}
""")

# $1 question_id, $2 body, $3 name, $4 email, $5 photo URLs → the new answer's id and the
# question's product (the views the balancer must refresh, http.changed), or no row
# when the question is unknown or reported (then nothing is written). One statement, so the
# answer and its photos commit together or not at all; photo ids follow the list's order.
INSERT_ANSWER = Statement("qa_insert_answer", f"""
WITH parent AS (
    SELECT id, product_id FROM question WHERE id = $1::integer AND NOT reported
), new_answer AS (
    INSERT INTO answer (question_id, body, date_written, answerer_name, answerer_email)
    SELECT parent.id, $2::text, now(), $3::text, $4::text FROM parent
    RETURNING id
), new_photos AS (
    INSERT INTO answer_photo (answer_id, url)
    SELECT new_answer.id, photo.url
    FROM new_answer, unnest($5::text[]) WITH ORDINALITY AS photo (url, position)
    ORDER BY photo.position
)
SELECT new_answer.id, parent.product_id
FROM new_answer, parent, {notify_changed("parent.product_id", "parent.id")}
""")


# $1 id → (product_id, question_id) of the row when it exists (204; the views the balancer must
# refresh, http.changed), no row otherwise (404). Helpful is one atomic increment: concurrent
# requests queue on the row lock and none is lost. An answer's product comes from its question
# in the same statement (no second round trip).
def _mark(name: str, update: str) -> Statement:
    """An UPDATE … RETURNING product_id, question_id that also publishes both."""
    return Statement(name, f"""
WITH marked AS ({update})
SELECT marked.product_id, marked.question_id
FROM marked, {notify_changed("marked.product_id", "marked.question_id")}
""")


MARK_QUESTION_HELPFUL = _mark("qa_mark_question_helpful", """
UPDATE question SET helpful = helpful + 1 WHERE id = $1::integer RETURNING product_id, id AS question_id""")

REPORT_QUESTION = _mark("qa_report_question", """
UPDATE question SET reported = true WHERE id = $1::integer RETURNING product_id, id AS question_id""")

_ANSWER_SUBJECTS = "(SELECT q.product_id FROM question q WHERE q.id = answer.question_id) AS product_id, question_id"

MARK_ANSWER_HELPFUL = _mark("qa_mark_answer_helpful", f"""
UPDATE answer SET helpful = helpful + 1 WHERE id = $1::integer RETURNING {_ANSWER_SUBJECTS}""")

REPORT_ANSWER = _mark("qa_report_answer", f"""
UPDATE answer SET reported = true WHERE id = $1::integer RETURNING {_ANSWER_SUBJECTS}""")
