"""A database that takes no writes (a failover not finished, a disk nearly full made
read-only with default_transaction_read_only): writes get a clear 503 with Retry-After and
change nothing; reads keep working; writes work again once the database takes them."""
import json
import time

import requests

QUESTION = {"body": "Is it waterproof?", "name": "n", "email": "n@example.com", "product_id": 5}


def set_read_only(chaos_db, on: bool):
    statement = ("ALTER SYSTEM SET default_transaction_read_only = on" if on
                 else "ALTER SYSTEM RESET default_transaction_read_only")
    chaos_db.admin(statement, "SELECT pg_reload_conf()")
    time.sleep(0.5)  # every backend applies the reloaded file before its next command


def test_a_read_only_database_refuses_writes_with_503_and_keeps_serving_reads(chaos_db, chaos_fleet):
    base = chaos_fleet.base
    before = (chaos_db.value("SELECT count(*) FROM question"), chaos_db.value("SELECT sum(helpful) FROM question"),
              chaos_db.value("SELECT count(*) FROM answer"))
    set_read_only(chaos_db, True)
    try:
        writes = [requests.post(base + "/qa/questions", json=QUESTION, timeout=5),
                  requests.post(base + "/qa/questions/3/answers", timeout=5, json={
                      "body": "Yes", "name": "n", "email": "n@example.com"}),
                  requests.put(base + "/qa/questions/3/helpful", timeout=5),
                  requests.put(base + "/qa/answers/3/report", timeout=5)]
        reads = [requests.get(base + f"/qa/questions?product_id={p}", timeout=5) for p in range(1, 11)]
    finally:
        set_read_only(chaos_db, False)
    for response in writes:
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "1"
        assert response.json() == {"message": "the database accepts no writes at the moment, retry later"}
    assert all(r.status_code == 200 and r.json()["results"] for r in reads)
    after = (chaos_db.value("SELECT count(*) FROM question"), chaos_db.value("SELECT sum(helpful) FROM question"),
             chaos_db.value("SELECT count(*) FROM answer"))
    assert after == before
    assert requests.post(base + "/qa/questions", json=QUESTION, timeout=5).status_code == 201
    # Each refusal is logged with the id nginx gave the request, the one the client got back.
    logged = [json.loads(line) for line in chaos_fleet.log_text().splitlines() if line.startswith("{")]
    refused = {line.get("request_id") for line in logged if line.get("exc_type") == "ReadOnlySqlTransaction"}
    assert {response.headers["X-Request-Id"] for response in writes} <= refused
