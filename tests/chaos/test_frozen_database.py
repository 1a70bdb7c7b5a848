"""PostgreSQL frozen (SIGSTOP of the server and every backend) for 6 s under a steady read+write
load through the balancer, then resumed: the server keeps its connections open and its kernel
acknowledges what is sent, so neither TCP keepalives nor the server's statement_timeout end a
query. The instances bound each wait for the server (statement timeout + 1 s: 2.5 s here,
`db.make_green`): every request is answered, `503` + `Retry-After` at worst, within that bound
(plus a connect timeout for the next request), and full service is back within seconds of the
resume. Writes answered 503 may still have been applied when the server resumed (it reads the
statement it had received): bounded below."""
import collections
import time
from pathlib import Path

import psutil

FROZEN_SECONDS = 6
SILENCE = 1.5 + 1      # Fleet.SETTINGS DB_STATEMENT_TIMEOUT_MS + 1 s
CONNECT = 1            # Fleet.SETTINGS DB_CONNECT_TIMEOUT_SECONDS


def server_processes(pg) -> list:
    postmaster = int((Path(pg.server_pgdata) / "postmaster.pid").read_text().split()[0])
    master = psutil.Process(postmaster)
    return [master, *master.children(recursive=True)]


def test_database_frozen_for_6_seconds_then_resumed(chaos_pg, chaos_db, chaos_fleet, question_ids, load,
                                                     writes_kept):
    questions_before = chaos_db.value("SELECT count(*) FROM question")
    helpful_before = chaos_db.value("SELECT sum(helpful) FROM question")
    workers_before = chaos_fleet.workers()

    with load(chaos_fleet.base, question_ids) as load:
        time.sleep(2)
        frozen = time.monotonic()
        processes = server_processes(chaos_pg)
        for process in processes:
            process.suspend()  # SIGSTOP
        try:
            time.sleep(FROZEN_SECONDS)
        finally:
            for process in processes:
                process.resume()  # SIGCONT
        resumed = time.monotonic()
        time.sleep(6)
        ended = time.monotonic()

    outcomes = load.outcomes
    statuses = collections.Counter(o.status for o in outcomes)
    slowest = max(o.finished - o.started for o in outcomes)
    during = load.between(frozen + 0.2, resumed)  # sent after every process had stopped
    print(f"\n{len(outcomes)} requests: {dict(statuses)}; while frozen: "
          f"{dict(collections.Counter(o.status for o in during))}, slowest answer {slowest:.2f} s")
    assert not [o for o in outcomes if o.status is None], "a request got no HTTP answer"
    unexpected = [o for o in outcomes if o.status not in (200, 201, 204, 503)]
    assert not unexpected, unexpected[:5]
    assert all(o.retry_after == "1" for o in outcomes if o.status == 503)
    assert slowest < SILENCE + CONNECT + 1.5, "a request waited past the bound"
    assert len(during) > 5 and all(o.status == 503 for o in during), during
    after = [o for o in outcomes if o.started > resumed + 2]
    assert len(after) > 20 and all(o.status in (200, 201, 204) for o in after), \
        collections.Counter(o.status for o in after)
    late = [o.finished - resumed for o in outcomes if o.started > resumed and o.status == 503]
    print(f"503s after the resume: {len(late)}, the last {max(late, default=0):.2f} s after it")
    assert chaos_fleet.workers() == workers_before, "a worker died"

    counts = writes_kept(chaos_db, outcomes, questions_before, helpful_before, question_ids)
    print("questions: {} acknowledged, {} stored, {} answered 503".format(*counts["questions"]))
    print("helpful votes: {} acknowledged, {} counted, {} answered 503".format(*counts["votes"]))
    assert ended - resumed > 5
