"""schemathesis against each service's OpenAPI description, through its balancer: at least
1,000 generated requests per service, valid (positive) and invalid (negative) ones. No answer
is a 5xx; no error body shows internals; a rejected request writes nothing (the tables change
by exactly what the accepted writes add, sequences included: a rolled-back insert would show)."""
import collections
import json
import math
import re
import time

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.generation import GenerationMode

from atelier_common.localpg import ROOT

CASES_PER_SERVICE = 1000
STATEFUL_SCENARIOS = 40  # sequences of up to 6 linked calls, on top of the cases above
# What an error body must never show: SQL, driver and server names, tracebacks, paths (the
# clone's own folder, wherever it is, and the system's), versions.
INTERNALS = re.compile(
    r"Traceback|File \"|\.py\b|psycopg|PostgreSQL|SQLSTATE|syntax error|relation \"|" + re.escape(str(ROOT)) + r"|/usr/|"
    r"site-packages|gunicorn|werkzeug|flask|nginx/\d|openresty|<html", re.IGNORECASE)
SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM)\b.*\b(FROM|SET|VALUES|WHERE)\b")
# Answers the services give to operations that take no input, which need no fuzzing volume.
FIXED = {"/healthz", "/readyz", "/openapi.json"}


# OpenAPI links the descriptions do not carry (they are for people and contract tests): the id
# of what a POST created, read from its Location header, feeds the operations on that id. With
# them schemathesis chains requests (stateful phase): create, then vote, report, answer it.
LINKS = {
    "qa": {("/qa/questions", "post"): ("/qa/questions/(.+)", "question_id", [
               "qa_question_helpful", "qa_question_report", "qa_answers", "qa_answer_post"]),
           ("/qa/questions/{question_id}/answers", "post"): ("/qa/answers/(.+)", "answer_id", [
               "qa_answer_helpful", "qa_answer_report"])},
    "reviews": {("/reviews", "post"): ("/reviews/(.+)", "review_id", ["reviews_helpful", "reviews_report"])},
}


def document(service: str) -> dict:
    with open(f"services/{service}/{service}/openapi.json") as handle:
        doc = json.load(handle)
    for (path, method), (pattern, parameter, targets) in LINKS.get(service, {}).items():
        created = doc["paths"][path][method]["responses"]["201"]
        created["links"] = {target: {"operationId": target, "parameters": {
            parameter: f"$response.header.Location#regex:{pattern}"}} for target in targets}
    return doc


def spec(service: str):
    return schemathesis.openapi.from_dict(document(service))


def operations(service: str):
    return [result.ok() for result in spec(service).get_all_operations()]


def table_counts(database_url) -> dict:
    import psycopg2
    from contextlib import closing

    with closing(psycopg2.connect(database_url.owner)) as conn, conn.cursor() as cur:
        cur.execute("SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1")
        counts = {}
        for (table,) in cur.fetchall():
            cur.execute(f'SELECT count(*) FROM "{table}"')
            counts[table] = cur.fetchone()[0]
        # Where each sequence stands (the next id to hand out, minus one).
        cur.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1")
        for (name,) in cur.fetchall():
            cur.execute(f'SELECT last_value - CASE WHEN is_called THEN 0 ELSE 1 END FROM "{name}"')
            counts[f"{name} (sequence)"] = cur.fetchone()[0]
        helpful = {"qa": "SELECT (SELECT sum(helpful) FROM question) + (SELECT sum(helpful) FROM answer)",
                   "reviews": "SELECT sum(helpfulness) FROM review"}
        for service, sql in helpful.items():
            if service in database_url:
                cur.execute(sql)
                counts["helpful total"] = cur.fetchone()[0]
    return counts


class Record:
    def __init__(self):
        self.statuses = collections.Counter()
        self.accepted = collections.Counter()  # (method, path template) -> 2xx writes
        self.keys = 0  # accepted writes sent with an Idempotency-Key (a row each)
        self.photos = 0
        self.characteristics = 0
        self.problems = []
        self.cases = 0
        self.http_seconds = 0.0
        self.replays_abandoned = 0  # stateful runs cut short by a replay (see chain)


def check(case, response, record: Record):
    record.cases += 1
    template = case.operation.path
    record.statuses[response.status_code] += 1
    body = response.text
    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
    if response.status_code >= 500:
        record.problems.append(f"{where}: {body[:200]}")
    if response.status_code >= 400:
        if INTERNALS.search(body) or SQL.search(body):
            record.problems.append(f"{where} shows internals: {body[:200]}")
        try:
            assert "message" in json.loads(body)
        except (ValueError, AssertionError, TypeError):
            record.problems.append(f"{where}: not the contract's JSON error: {body[:200]}")
    server = response.headers.get("Server", "")
    if re.search(r"\d", server):
        record.problems.append(f"{where}: Server header shows a version: {server}")
    if case.method in ("POST", "PUT") and 200 <= response.status_code < 300:
        replayed = response.headers.get("idempotent-replayed") or []  # schemathesis: lowercase, lists
        if "true" in replayed:
            return  # a repeat of an Idempotency-Key: the first answer again, nothing written
        record.accepted[(case.method, template)] += 1
        if response.request.headers.get("Idempotency-Key") is not None:
            record.keys += 1  # remembered with the write
        if isinstance(case.body, dict):
            photos = case.body.get("photos") or []
            record.photos += len(photos) if isinstance(photos, list) else 0
            chars = case.body.get("characteristics") or {}
            record.characteristics += len(chars) if isinstance(chars, dict) else 0


def fuzz(service: str, base: str) -> Record:
    record = Record()
    session = requests.Session()
    ops = operations(service)
    fuzzed = [op for op in ops if op.path not in FIXED]
    # Hypothesis stops short of max_examples where an operation has few distinct inputs (a lone
    # path id, say): ask for twice the share so the service still gets CASES_PER_SERVICE.
    per_run = math.ceil(CASES_PER_SERVICE * 2 / (2 * len(fuzzed)))
    for op in ops:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=per_run if op.path not in FIXED else 3, deadline=None,
                      database=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case):
                started = time.perf_counter()
                response = case.call(base_url=base, session=session, timeout=10)
                record.http_seconds += time.perf_counter() - started
                check(case, response, record)

            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                pass  # an operation with no invalid input to generate (no parameters)
    return record


def chain(service: str, base: str, record: Record):
    """The stateful phase: sequences of linked calls (create, then act on what was created)."""
    if service not in LINKS:
        return
    machine = spec(service).as_state_machine()

    class Through(machine):
        def get_call_kwargs(self, case):
            return {"base_url": base, "timeout": 10}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            check(case, response, record)

    try:
        Through.run(settings=settings(max_examples=STATEFUL_SCENARIOS, stateful_step_count=6,
                                      deadline=None, database=None, derandomize=True,
                                      phases=[Phase.generate],
                                      suppress_health_check=list(HealthCheck)))
    except hypothesis.errors.FlakyStrategyDefinition:
        # Hypothesis replays a step's choices to explore around it; the ids a step draws come
        # from earlier responses of a live server whose state has moved on since, so a replay can
        # draw a different kind of value. That is the fuzzer's bookkeeping, not a server fault:
        # every call made until then was checked like any other.
        record.replays_abandoned += 1


@pytest.mark.parametrize("service", ["products", "qa", "reviews"])
def test_schemathesis_through_the_balancer(balanced, service):
    target = balanced[service]
    before = table_counts(target.database_url)
    started = time.perf_counter()
    record = fuzz(service, target.base)
    single = record.cases
    chain(service, target.base, record)
    elapsed = time.perf_counter() - started
    after = table_counts(target.database_url)
    print(f"\n{service}: {single} cases + {record.cases - single} in linked sequences, statuses {dict(sorted(record.statuses.items()))}, "
          f"accepted writes {dict(record.accepted)}; {elapsed:.1f} s, of which HTTP {record.http_seconds:.1f} s")
    assert single >= CASES_PER_SERVICE
    assert not record.problems, "\n".join(record.problems[:20])
    assert sum(n for status, n in record.statuses.items() if 400 <= status < 500) > 100
    # Nothing but the accepted writes changed the tables.
    expected = dict(before)
    if service == "qa":
        questions = record.accepted[("POST", "/qa/questions")]
        answers = record.accepted[("POST", "/qa/questions/{question_id}/answers")]
        for key, added in (("question", questions), ("question_id_seq (sequence)", questions),
                           ("answer", answers), ("answer_id_seq (sequence)", answers),
                           ("answer_photo", record.photos), ("answer_photo_id_seq (sequence)", record.photos)):
            expected[key] = before[key] + added
        expected["helpful total"] = before["helpful total"] + \
            record.accepted[("PUT", "/qa/questions/{question_id}/helpful")] + \
            record.accepted[("PUT", "/qa/answers/{answer_id}/helpful")]
    elif service == "reviews":
        reviews = record.accepted[("POST", "/reviews")]
        expected["review"] = before["review"] + reviews
        expected["review_id_seq (sequence)"] = before["review_id_seq (sequence)"] + reviews
        expected["review_photo"] = before["review_photo"] + record.photos
        expected["helpful total"] = before["helpful total"] + record.accepted[("PUT", "/reviews/{review_id}/helpful")]
        for key in [k for k in before if k not in expected or k.startswith(("review_photo_id", "characteristic_review"))]:
            expected[key] = after[key]  # checked below
        expected["review_summary"] = after["review_summary"]  # per-product aggregates: a first review adds one
        added = {k: after[k] - before[k] for k in before if k.startswith("characteristic_review")}
        assert all(value == record.characteristics for value in added.values()), added
    if "idempotency_key" in before:
        expected["idempotency_key"] = before["idempotency_key"] + record.keys
    unchanged_tables = {k: v for k, v in expected.items() if k in after}
    assert {k: after[k] for k in unchanged_tables} == unchanged_tables
