"""The loader on generated dirty data: every dirt kind of the four review files handled as
manifest.csv says it was injected, every good row loaded, aggregates exact, loads repeatable."""
import csv
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2
import pytest

from reviews import loader

REJECTED_KINDS = {"rating_missing", "rating_out_of_range", "orphan_parent", "characteristic_null_name",
                  "duplicate_id"}
REASON_OF_KIND = {"rating_missing": "rating_missing", "rating_out_of_range": "rating_out_of_range",
                  "orphan_parent": "orphan", "characteristic_null_name": "characteristic_null_name",
                  "duplicate_id": "duplicate id"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("csv")
    subprocess.run([sys.executable, "-m", "atelier_etl.generate", "--scale", "0.002", "--seed", "7",
                    "--dirty", "--out", str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def manifest(data_dir):
    with open(data_dir / "manifest.csv", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["file"] in loader.FILES]


def run_load(database_url, data_dir, rejects_dir):
    """What `python -m atelier_etl.load` does: one connection, one transaction, commit."""
    conn = psycopg2.connect(database_url.owner)  # loading is the owner's job
    try:
        reports = loader.load(conn, data_dir, rejects_dir)
        conn.commit()
    finally:
        conn.close()
    return {report.file: report for report in reports}


@pytest.fixture(scope="module")
def loaded(database_url, data_dir, tmp_path_factory):
    rejects = tmp_path_factory.mktemp("rejects")
    return run_load(database_url, data_dir, rejects), rejects


def rejects_of(rejects_dir: Path, file: str) -> dict:
    path = rejects_dir / f"{Path(file).stem}.rejects.csv"
    if not path.exists():
        return {}
    with open(path, newline="") as handle:
        return {int(row["line"]): row["reason"] for row in csv.DictReader(handle)}


def test_every_record_is_loaded_or_rejected(loaded, data_dir, db):
    reports, _ = loaded
    assert set(reports) == set(loader.FILES)
    tables = {"reviews.csv": "review", "reviews_photos.csv": "review_photo",
              "characteristics.csv": "characteristic", "characteristic_reviews.csv": "characteristic_review"}
    for file, report in reports.items():
        with open(data_dir / file, encoding="utf-8-sig", newline="") as handle:
            records = sum(1 for _ in csv.reader(handle)) - 1
        assert report.read == records == report.loaded + report.rejected
        with db.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {tables[file]}")
            assert cur.fetchone()[0] == report.loaded


def test_each_rejected_dirt_kind_is_rejected_at_its_line_and_nothing_else_is(loaded, manifest):
    reports, rejects_dir = loaded
    for file in loader.FILES:
        expected = {int(row["line"]): row["kind"] for row in manifest
                    if row["file"] == file and row["kind"] in REJECTED_KINDS}
        found = rejects_of(rejects_dir, file)
        assert set(found) == set(expected), file
        for line, kind in expected.items():
            assert found[line].split(":")[0] == REASON_OF_KIND[kind], (file, line, found[line])
        assert reports[file].rejected == len(expected)
    kinds = {row["kind"] for row in manifest}
    assert REJECTED_KINDS <= kinds  # the generator injected every kind this test is about


def test_rejected_rows_are_absent_and_duplicates_keep_the_first(loaded, manifest, data_dir, db):
    tables = {"reviews.csv": "review", "reviews_photos.csv": "review_photo",
              "characteristics.csv": "characteristic", "characteristic_reviews.csv": "characteristic_review"}
    with db.cursor() as cur:
        for row in manifest:
            if row["kind"] in REJECTED_KINDS - {"duplicate_id"}:
                cur.execute(f"SELECT count(*) FROM {tables[row['file']]} WHERE id = %s", (int(row["id"]),))
                assert cur.fetchone()[0] == 0, row
    duplicates = {int(row["id"]) for row in manifest if row["kind"] == "duplicate_id" and row["file"] == "reviews.csv"}
    assert duplicates
    first = {}
    with open(data_dir / "reviews.csv", encoding="utf-8-sig", newline="") as handle:
        for record in csv.DictReader(handle):
            first.setdefault(int(record["id"]), record)
    with db.cursor() as cur:
        for review_id in duplicates:
            cur.execute("SELECT product_id, body FROM review WHERE id = %s", (review_id,))
            assert cur.fetchone() == (int(first[review_id]["product_id"]), first[review_id]["body"])


def expected_instant_ms(text: str) -> int:
    """The instant a date_iso or date_js text means, worked out independently of the loader."""
    iso = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z", text)
    if iso:
        y, mo, d, h, mi, s, ms = map(int, iso.groups())
        return int(datetime(y, mo, d, h, mi, s, tzinfo=timezone.utc).timestamp()) * 1000 + ms
    js = re.fullmatch(r"\w{3} (\w{3}) (\d\d) (\d{4}) (\d\d):(\d\d):(\d\d) GMT([+-])(\d\d)(\d\d) \(.*\)", text)
    assert js, text
    month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].index(js[1]) + 1
    wall = datetime(int(js[3]), month, int(js[2]), int(js[4]), int(js[5]), int(js[6]), tzinfo=timezone.utc)
    offset = timedelta(hours=int(js[8]), minutes=int(js[9])) * (1 if js[7] == "+" else -1)
    return int((wall - offset).timestamp()) * 1000


def test_dates_in_other_forms_are_repaired_to_their_instant(loaded, manifest, data_dir, db, client):
    reports, _ = loaded
    dated = {int(row["id"]): row["kind"] for row in manifest if row["kind"] in ("date_iso", "date_js")}
    assert {"date_iso", "date_js"} <= set(dated.values())
    texts = {}
    with open(data_dir / "reviews.csv", encoding="utf-8-sig", newline="") as handle:
        for record in csv.DictReader(handle):
            if int(record["id"]) in dated:
                texts.setdefault(int(record["id"]), record["date"])
    with db.cursor() as cur:
        for review_id, kind in dated.items():
            cur.execute("SELECT date_ms, product_id FROM review WHERE id = %s", (review_id,))
            date_ms, product_id = cur.fetchone()
            assert date_ms == expected_instant_ms(texts[review_id]), (kind, texts[review_id])
            if kind == "date_js":  # and the API shows that instant in UTC
                listed = client.get(f"/reviews?product_id={product_id}&count=1000&sort=newest").get_json()
                shown = {r["review_id"]: r["date"] for r in listed["results"]}
                if review_id in shown:
                    assert shown[review_id] == datetime.fromtimestamp(date_ms / 1000, timezone.utc) \
                        .strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert reports["reviews.csv"].repaired == len(dated)


def test_byte_order_mark_words_and_bare_null(loaded, manifest, data_dir, db):
    assert any(row["kind"] == "bom" for row in manifest)
    for row in manifest:
        if row["kind"] == "bom":
            assert (data_dir / row["file"]).read_bytes().startswith(b"\xef\xbb\xbf")
    with open(data_dir / "reviews.csv", encoding="utf-8-sig", newline="") as handle:
        records = {}
        for record in csv.DictReader(handle):
            records.setdefault(int(record["id"]), record)
    with db.cursor() as cur:
        cur.execute("SELECT id, recommend, reported, response FROM review")
        rows = cur.fetchall()
    assert any(response is None for _, _, _, response in rows)
    assert any(response is not None for _, _, _, response in rows)
    for review_id, recommend, reported, response in rows:
        record = records[review_id]
        assert (recommend, reported) == (record["recommend"] == "true", record["reported"] == "true")
        assert response == (None if record["response"] == "null" else record["response"])


def test_aggregates_equal_a_recomputation_from_the_loaded_rows(loaded, db, helpers):
    expected = helpers.recompute_meta(db)
    assert len(expected) > 100
    assert helpers.served_meta(db, expected) == expected


def test_posts_after_a_load_get_fresh_ids(loaded, client, db):
    with db.cursor() as cur:
        cur.execute("SELECT max(id) FROM review")
        highest = cur.fetchone()[0]
        cur.execute("SELECT product_id FROM characteristic ORDER BY id LIMIT 1")
        product_id = cur.fetchone()[0]
    response = client.post("/reviews", json={
        "product_id": product_id, "rating": 3, "summary": "", "body": "b" * 50, "recommend": True,
        "name": "n", "email": "n@example.com", "photos": ["https://a/b.jpg"]})
    assert response.status_code == 201
    assert int(response.headers["Location"].rsplit("/", 1)[1]) == highest + 1


def table_digests(db) -> dict:
    with db.cursor() as cur:
        digests = {}
        for table in ("review", "review_photo", "characteristic", "characteristic_review",
                      "characteristic_tally", "review_summary"):
            cur.execute(f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t")
            digests[table] = cur.fetchone()
        return digests


def test_loading_twice_gives_the_same_database(database_factory, data_dir, tmp_path):
    url = database_factory("reviews")
    run_load(url, data_dir, tmp_path / "first")
    with psycopg2.connect(url) as conn:
        first = table_digests(conn)
    run_load(url, data_dir, tmp_path / "second")
    with psycopg2.connect(url) as conn:
        assert table_digests(conn) == first
    conn.close()
