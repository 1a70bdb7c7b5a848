"""qa/loader.py on generated dirty data (plus a little dirt of the test's own making): what is
loaded, what is rejected and why, at which line; idempotence; ids of later POSTs."""
import csv
import hashlib
import io
import shutil
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from qa import create_app, loader

QA_FILES = loader.FILES


def _records(path: Path):
    """(physical line where the record starts, fields) for each data record of a CSV file."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        line = reader.line_num + 1
        for fields in reader:
            yield line, fields
            line = reader.line_num + 1


def _append(path: Path, rows):
    with open(path, "a", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Generated dirty Q&A files, with dirt the generator does not put in these files added:
    a BOM, an answer whose question does not exist, a photo of that answer, unreadable values."""
    folder = tmp_path_factory.mktemp("qa-data")
    subprocess.run([sys.executable, "-m", "atelier_etl.generate", "--scale", "0.002", "--seed", "7", "--dirty",
                    "--out", str(folder)], check=True, capture_output=True)
    for name in folder.iterdir():
        if name.name not in QA_FILES and name.name != "manifest.csv":
            name.unlink()
    questions = folder / "questions.csv"
    questions.write_bytes(b"\xef\xbb\xbf" + questions.read_bytes())
    max_question = max(int(fields[0]) for _, fields in _records(questions))
    max_answer = max(int(fields[0]) for _, fields in _records(folder / "answers.csv"))
    max_photo = max(int(fields[0]) for _, fields in _records(folder / "answers_photos.csv"))
    _append(questions, [
        [max_question + 1, 5, "Reported 2?", "1595884714409", "x", "x@example.com", "2", "0"],
        [max_question + 2, 5, "Bad date", "yesterday", "x", "x@example.com", "0", "0"],
        [max_question + 3, 5, "ISO date", "2021-01-17T03:01:59.883Z", "x", "x@example.com", "1", "4"],
    ])
    _append(folder / "answers.csv", [
        [max_answer + 1, max_question + 1, "Answer to a rejected question", "1599958385988", "y", "y@example.com",
         "0", "1"],
        [max_answer + 2, max_question + 3, "Answer with a \\ and a\ttab", "1599958385988", "y", "y@example.com",
         "0", "1"],
    ])
    _append(folder / "answers_photos.csv", [
        [max_photo + 1, max_answer + 1, "https://img.example/orphan-of-an-orphan.jpg"],
        [max_photo + 2, max_answer + 2, "https://img.example/kept.jpg"],
    ])
    return folder


def _expected_rejects(data_dir):
    """{file: {line: kind}} for every record the loader must reject, from the manifest and from
    the test's own dirt (the last records of each file)."""
    expected = {name: {} for name in QA_FILES}
    with open(data_dir / "manifest.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["file"] in expected:
                expected[row["file"]][int(row["line"])] = row["kind"]
    lines = {name: [line for line, _ in _records(data_dir / name)] for name in QA_FILES}
    expected["questions.csv"][lines["questions.csv"][-3]] = "bad value"
    expected["questions.csv"][lines["questions.csv"][-2]] = "bad value"
    expected["answers.csv"][lines["answers.csv"][-2]] = "orphan"
    expected["answers_photos.csv"][lines["answers_photos.csv"][-2]] = "orphan"
    return expected


def _load(url, data_dir, rejects_dir):
    with closing(psycopg2.connect(url.owner)) as conn:  # loading is the owner's job
        reports = loader.load(conn, data_dir, rejects_dir)
        conn.commit()
    return reports


def _fingerprint(url):
    """A digest of every table's rows, in id order, and of the sequences (read by the owner)."""
    digest = {}
    with closing(psycopg2.connect(url.owner)) as conn, conn.cursor() as cur:
        for table in ("question", "answer", "answer_photo"):
            buffer = io.StringIO()
            cur.copy_expert(f"COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT", buffer)
            digest[table] = hashlib.sha256(buffer.getvalue().encode()).hexdigest()
            cur.execute(f"SELECT last_value, is_called FROM {table}_id_seq")
            digest[table + " sequence"] = cur.fetchone()
    return digest


@pytest.fixture(scope="module")
def loaded(database_factory, data_dir, tmp_path_factory):
    url = database_factory("qa")
    rejects_dir = tmp_path_factory.mktemp("rejects")
    reports = _load(url, data_dir, rejects_dir)
    return url, {r.file: r for r in reports}, rejects_dir


def test_every_record_is_loaded_or_rejected(loaded, data_dir):
    url, reports, _ = loaded
    assert list(reports) == list(QA_FILES)
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        for name, table in zip(QA_FILES, ("question", "answer", "answer_photo")):
            report = reports[name]
            records = sum(1 for _ in _records(data_dir / name))
            assert report.read == records
            assert report.read == report.loaded + report.rejected
            cur.execute(f"SELECT count(*) FROM {table}")
            assert cur.fetchone()[0] == report.loaded
    assert reports["questions.csv"].repaired == 1  # the ISO date


def test_rejects_match_the_dirt_line_by_line(loaded, data_dir):
    _, reports, rejects_dir = loaded
    expected = _expected_rejects(data_dir)
    assert expected["answers.csv"] and expected["answers_photos.csv"]  # the generator's own dirt is there
    kinds = {"duplicate_id": "duplicate id", "orphan_parent": "orphan"}
    for name in QA_FILES:
        with open(rejects_dir / f"{Path(name).stem}.rejects.csv", newline="") as handle:
            found = {int(row["line"]): row["reason"] for row in csv.DictReader(handle)}
        assert sorted(found) == sorted(expected[name]), name
        for line, kind in expected[name].items():
            assert found[line].startswith(kinds.get(kind, kind) + ":"), (name, line, found[line])
        assert reports[name].rejected == len(expected[name])


def test_duplicates_keep_the_first_occurrence(loaded, data_dir):
    url, _, _ = loaded
    first = {}
    duplicates = []
    manifest_lines = {int(row["line"]) for row in csv.DictReader(open(data_dir / "manifest.csv", newline=""))
                      if row["file"] == "answers.csv" and row["kind"] == "duplicate_id"}
    for line, fields in _records(data_dir / "answers.csv"):
        if line in manifest_lines:
            duplicates.append(fields)
        else:
            first.setdefault(fields[0], fields)
    assert duplicates
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        for fields in duplicates:
            cur.execute("SELECT question_id, body FROM answer WHERE id = %s", (int(fields[0]),))
            kept = first[fields[0]]
            assert cur.fetchall() == [(int(kept[1]), kept[2])]


def test_values_are_converted(loaded, data_dir):
    url, _, _ = loaded
    questions = list(_records(data_dir / "questions.csv"))
    sample = [fields for _, fields in questions[:200]] + [fields for _, fields in questions if fields[6] == "1"][:20]
    assert any(fields[6] == "1" for fields in sample)
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        for ident, product_id, body, date, name, email, reported, helpful in sample:
            if not date.isdigit():
                continue
            cur.execute("""SELECT product_id, body, (extract(epoch FROM date_written) * 1000)::bigint, asker_name,
                                  asker_email, reported, helpful FROM question WHERE id = %s""", (int(ident),))
            assert cur.fetchone() == (int(product_id), body, int(date), name, email, reported == "1", int(helpful))
        cur.execute("SELECT date_written = '2021-01-17T03:01:59.883Z', reported, helpful FROM question "
                    "WHERE body = 'ISO date'")
        assert cur.fetchone() == (True, True, 4)
        cur.execute("SELECT body FROM answer WHERE body LIKE 'Answer with%'")
        assert cur.fetchone() == ("Answer with a \\ and a\ttab",)
        cur.execute("SELECT count(*) FROM answer_photo WHERE url = 'https://img.example/kept.jpg'")
        assert cur.fetchone() == (1,)


def test_indexes_and_sequences_exist_after_a_load(loaded):
    url, _, _ = loaded
    with closing(psycopg2.connect(url.owner)) as conn, conn.cursor() as cur:  # reads a sequence
        cur.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1")
        assert [row[0] for row in cur.fetchall()] == [
            "answer_photo_answer_idx", "answer_photo_pkey", "answer_pkey", "answer_question_idx",
            "idempotency_key_created_idx", "idempotency_key_pkey", "question_pkey", "question_product_idx"]
        cur.execute("SELECT max(id), (SELECT last_value FROM question_id_seq) FROM question")
        maximum, last_value = cur.fetchone()
        assert last_value == maximum


def test_loading_twice_gives_the_same_database(loaded, data_dir, tmp_path):
    url, _, _ = loaded
    before = _fingerprint(url)
    again = {r.file: (r.read, r.loaded, r.rejected) for r in _load(url, data_dir, tmp_path)}
    assert _fingerprint(url) == before
    assert again["answers.csv"][2] > 0


def test_a_post_after_a_load_gets_a_fresh_id(loaded):
    url, _, _ = loaded
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT (SELECT max(id) FROM question), (SELECT max(id) FROM answer), "
                    "(SELECT max(id) FROM answer_photo)")
        max_question, max_answer, max_photo = cur.fetchone()
    client = create_app({"database_url": url}).test_client()
    response = client.post("/qa/questions", json={"body": "New?", "name": "n", "email": "n@example.com",
                                                  "product_id": 5})
    assert response.status_code == 201
    new_question = int(response.headers["Location"].rsplit("/", 1)[1])
    assert new_question > max_question
    response = client.post(f"/qa/questions/{new_question}/answers",
                           json={"body": "Yes", "name": "n", "email": "n@example.com",
                                 "photos": ["https://img.example/new.jpg"]})
    assert response.status_code == 201
    assert int(response.headers["Location"].rsplit("/", 1)[1]) > max_answer
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT max(id) FROM answer_photo")
        assert cur.fetchone()[0] == max_photo + 1


def test_loaded_data_is_served(loaded):
    url, _, _ = loaded
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("""SELECT q.product_id, q.id, count(a.id) FROM question q
                       JOIN answer a ON a.question_id = q.id AND NOT a.reported
                       WHERE NOT q.reported GROUP BY q.id ORDER BY count(a.id) DESC, q.id LIMIT 1""")
        product, question, answer_count = cur.fetchone()
    client = create_app({"database_url": url}).test_client()
    listed = client.get(f"/qa/questions?product_id={product}&count=1000").get_json()["results"]
    nested = next(q for q in listed if q["question_id"] == question)
    assert len(nested["answers"]) == answer_count
    answers = client.get(f"/qa/questions/{question}/answers?count=1000").get_json()["results"]
    assert sorted(a["answer_id"] for a in answers) == sorted(int(k) for k in nested["answers"])


def test_header_mismatch_fails_the_whole_load(database_factory, data_dir, tmp_path):
    url = database_factory("qa")
    broken = tmp_path / "broken"
    shutil.copytree(data_dir, broken)
    (broken / "answers_photos.csv").write_text("id,answer,url\n1,1,https://x.example/1\n")
    with closing(psycopg2.connect(url.owner)) as conn:
        with pytest.raises(ValueError, match="header"):
            loader.load(conn, broken, tmp_path / "rejects")
        conn.rollback()
