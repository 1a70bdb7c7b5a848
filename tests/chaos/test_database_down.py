"""PostgreSQL stopped for 5 s under a steady read+write load through the balancer, then
restarted: while it is down every answer is a 503 with Retry-After (never a hang, a 500 or a
dropped connection), no worker dies, the pools recover on their own and full service is back
within 5 s of the restart. Every acknowledged write is there exactly once."""
import collections
import time

OUTAGE_SECONDS = 5
RECOVERY_SECONDS = 5


def test_database_stopped_for_5_seconds_then_restarted(chaos_pg, chaos_db, chaos_fleet, question_ids, load,
                                                       writes_kept):
    questions_before = chaos_db.value("SELECT count(*) FROM question")
    helpful_before = chaos_db.value("SELECT sum(helpful) FROM question")
    workers_before = chaos_fleet.workers()

    with load(chaos_fleet.base, question_ids) as load:
        time.sleep(2)
        stopping = time.monotonic()
        chaos_pg.stop()  # pg_ctl stop -m fast: sessions are cut, the server is gone
        stopped = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        restarting = time.monotonic()
        chaos_pg.start()
        restarted = time.monotonic()
        time.sleep(RECOVERY_SECONDS + 3)
        ended = time.monotonic()

    outcomes = load.outcomes
    statuses = collections.Counter(o.status for o in outcomes)
    print(f"\n{len(outcomes)} requests: {dict(statuses)}; stop took {stopped - stopping:.2f} s, "
          f"start {restarted - restarting:.2f} s")
    assert not [o for o in outcomes if o.status is None], "a request got no HTTP answer"
    unexpected = [o for o in outcomes if o.status not in (200, 201, 204, 503)]
    assert not unexpected, unexpected[:5]
    assert all(o.retry_after == "1" for o in outcomes if o.status == 503)

    before = load.between(0, stopping)
    assert before and all(o.status in (200, 201, 204) for o in before)
    down = load.between(stopped, restarting)
    assert len(down) > 20 and all(o.status == 503 for o in down)
    assert max(o.finished - o.started for o in down) < 3.0, "a request hung while the database was down"
    recovered = load.between(restarted + RECOVERY_SECONDS, ended)
    assert len(recovered) > 20 and all(o.status in (200, 201, 204) for o in recovered), \
        collections.Counter(o.status for o in recovered)
    first_bad_after = [o.finished - restarted for o in outcomes
                       if o.started > restarted and o.status == 503]
    print(f"503s after the restart: {len(first_bad_after)}, the last "
          f"{max(first_bad_after, default=0):.2f} s after it")

    assert chaos_fleet.workers() == workers_before, "a worker died"

    # Acknowledged writes: each 201's question exists (once: ids are keys); each 204 counted.
    writes_kept(chaos_db, outcomes, questions_before, helpful_before, question_ids)
