"""A write whose answer is lost: the instance dies (SIGKILL) after its COMMIT, before it
answers (a test-only fault hook, FAULT_DIE_AFTER_COMMIT, atelier_common/idempotency.py).

Without an Idempotency-Key the balancer cannot know whether the write was applied: 502, and
the write is stored once (a client retry would duplicate it). With a key the balancer resends
the POST to the next instance, which finds the key and replays the committed answer: the
client gets its 201 with the first Location, and the write is stored exactly once."""
import time
import uuid

import requests


def questions_with(db, body: str) -> int:
    return db.value("SELECT count(*) FROM question WHERE body = %s", (body,))


def test_a_keyed_post_whose_answer_was_lost_is_answered_by_the_next_instance(chaos_db, make_fleet, tmp_path):
    marker = tmp_path / "die-after-commit"
    fleet = make_fleet(chaos_db.url, FAULT_DIE_AFTER_COMMIT=str(marker))
    before = fleet.workers()
    body = f"Lost answer, keyed {uuid.uuid4()}"
    question = {"body": body, "name": "n", "email": "n@example.com", "product_id": 3}

    marker.touch()
    started = time.monotonic()
    response = requests.post(fleet.base + "/qa/questions", json=question, timeout=15,
                             headers={"Idempotency-Key": str(uuid.uuid4())})
    seconds = time.monotonic() - started
    assert not marker.exists(), "no instance died: the fault never happened"
    assert fleet.workers() != before  # one worker was killed (and replaced)
    assert response.status_code == 201, response.text
    assert response.headers["Idempotent-Replayed"] == "true"  # the second instance replayed it
    question_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert questions_with(chaos_db, body) == 1
    assert chaos_db.value("SELECT body FROM question WHERE id = %s", (question_id,)) == body
    assert seconds < 2


def test_without_a_key_the_lost_answer_is_a_502_and_the_write_was_applied_once(chaos_db, make_fleet, tmp_path):
    marker = tmp_path / "die-after-commit"
    fleet = make_fleet(chaos_db.url, FAULT_DIE_AFTER_COMMIT=str(marker))
    body = f"Lost answer, unkeyed {uuid.uuid4()}"
    marker.touch()
    response = requests.post(fleet.base + "/qa/questions", timeout=15,
                             json={"body": body, "name": "n", "email": "n@example.com", "product_id": 3})
    assert not marker.exists()
    assert response.status_code == 502 and response.headers["Retry-After"] == "1"
    assert questions_with(chaos_db, body) == 1  # applied, and the client cannot know it
