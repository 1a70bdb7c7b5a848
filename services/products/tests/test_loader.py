"""The loader on generated dirty data: every dirt kind of the six product files is repaired or
rejected as data.md says, at the manifest's line numbers, and nothing else is touched."""
import csv
import io
from collections import Counter
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest

from atelier_etl.generate import generate
from products import loader

TABLES = {"product.csv": "product", "features.csv": "feature", "styles.csv": "style",
          "photos.csv": "photo", "skus.csv": "sku", "related.csv": "related"}
# manifest kind -> the kind (text before ":") of the reason the loader must reject it with
REJECTED_AS = {"related_zero": "related_zero", "related_self": "related_self",
               "photo_unclosed_quote": "photo_unclosed_quote", "missing_field": "wrong field count",
               "duplicate_id": "duplicate id"}
REPAIRED = {"price_format", "photo_missing_thumbnail"}
HARMLESS = {"bom"}  # dropped by the reader; the file loads


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dirty")
    generate(folder, scale=0.002, seed=7, dirty=True, jobs=1, log=None)
    return folder


@pytest.fixture(scope="module")
def manifest(data_dir):
    with open(data_dir / "manifest.csv", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["file"] in TABLES]


def run_load(database_url, data_dir, rejects_dir):
    with closing(psycopg2.connect(database_url.owner)) as conn:  # loading is the owner's job
        reports = loader.load(conn, data_dir, rejects_dir)
        conn.commit()
    return {report.file: report for report in reports}


@pytest.fixture(scope="module")
def loaded(database_factory, data_dir):
    url = database_factory("products")
    rejects_dir = data_dir / "rejects"
    return url, run_load(url, data_dir, rejects_dir), rejects_dir


def rejects_of(rejects_dir: Path, name: str):
    path = rejects_dir / f"{Path(name).stem}.rejects.csv"
    if not path.exists():
        return {}
    with open(path, newline="") as handle:
        return {int(row["line"]): row for row in csv.DictReader(handle)}


def physical_line(data_dir: Path, name: str, number: int) -> str:
    with open(data_dir / name, encoding="utf-8-sig", newline="") as handle:
        for current, text in enumerate(handle, 1):
            if current == number:
                return text
    raise AssertionError(f"{name} has no line {number}")


def query(url, sql, params=()):
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def test_the_manifest_covers_every_dirt_kind_of_these_files(manifest):
    kinds = {row["kind"] for row in manifest}
    assert kinds == set(REJECTED_AS) | REPAIRED | HARMLESS


def test_rejects_are_exactly_the_manifest_lines_with_the_right_reasons(loaded, manifest):
    _, _, rejects_dir = loaded
    for name in TABLES:
        expected = {int(row["line"]): REJECTED_AS[row["kind"]]
                    for row in manifest if row["file"] == name and row["kind"] in REJECTED_AS}
        found = {line: row["reason"].split(":")[0] for line, row in rejects_of(rejects_dir, name).items()}
        assert found == expected, name


def test_an_unclosed_quote_loses_its_neighbour_and_says_so(loaded, manifest, data_dir):
    url, _, rejects_dir = loaded
    rejects = rejects_of(rejects_dir, "photos.csv")
    broken = [row for row in manifest if row["kind"] == "photo_unclosed_quote"]
    assert broken
    for row in broken:
        line = int(row["line"])
        neighbour_id = physical_line(data_dir, "photos.csv", line + 1).split(",", 1)[0]
        reason = rejects[line]["reason"]
        assert "lost" in reason and f"id {neighbour_id}" in reason
        assert query(url, "SELECT count(*) FROM photo WHERE id IN (%s, %s)", (int(row["id"]), int(neighbour_id))) == [(0,)]


def test_prices_with_spaces_or_dollar_signs_are_repaired(loaded, manifest, data_dir):
    url, reports, _ = loaded
    rows = [row for row in manifest if row["kind"] == "price_format"]
    assert rows
    for row in rows:
        raw = next(csv.reader(io.StringIO(physical_line(data_dir, "product.csv", int(row["line"])))))[-1]
        assert raw != raw.strip(" $")  # really dirty
        assert query(url, "SELECT default_price FROM product WHERE id = %s", (int(row["id"]),)) == [(Decimal(raw.strip(" $")),)]
    assert reports["product.csv"].repaired == len(rows)


def test_missing_thumbnails_are_repaired_with_the_photo_url(loaded, manifest):
    url, reports, _ = loaded
    ids = [int(row["id"]) for row in manifest if row["kind"] == "photo_missing_thumbnail"]
    assert ids
    found = query(url, "SELECT id, thumbnail_url = url AND url LIKE 'https://%%' FROM photo WHERE id = ANY(%s) ORDER BY id", (ids,))
    assert found == [(i, True) for i in sorted(ids)]
    assert reports["photos.csv"].repaired == len(ids)


def test_a_duplicate_id_keeps_the_first_row(loaded, manifest, data_dir):
    url, _, _ = loaded
    for row in [r for r in manifest if r["kind"] == "duplicate_id" and r["file"] == "product.csv"]:
        with open(data_dir / "product.csv", encoding="utf-8-sig", newline="") as handle:
            first = next(fields for fields in csv.reader(handle) if fields[0] == row["id"])
        assert query(url, "SELECT name FROM product WHERE id = %s", (int(row["id"]),)) == [(first[1],)]


def test_counts_add_up_per_file(loaded, manifest):
    url, reports, _ = loaded
    assert list(reports) == list(loader.FILES)
    per_file = Counter((row["file"], row["kind"] in REJECTED_AS) for row in manifest)
    for name, table in TABLES.items():
        report = reports[name]
        assert report.read == report.loaded + report.rejected > 0
        assert report.rejected == per_file[(name, True)]
        assert query(url, f"SELECT count(*) FROM {table}") == [(report.loaded,)]
    assert reports["product.csv"].loaded == query(url, "SELECT count(*) FROM product_document")[0][0]


def test_loaded_data_serves_the_endpoints(loaded):
    from products import create_app

    url, _, _ = loaded
    client = create_app({"database_url": url}).test_client()
    (product_id,) = query(url, "SELECT max(product_id) FROM style")[0]
    styles = client.get(f"/products/{product_id}/styles").get_json()
    assert styles["product_id"] == str(product_id) and styles["results"]
    assert len(client.get("/products?count=7").get_json()) == 7
    (zero_owner,) = query(url, "SELECT min(product_id) FROM related")[0]
    assert 0 not in client.get(f"/products/{zero_owner}/related").get_json()


def database_digest(url):
    """Every table's content, and where each sequence stands."""
    digest = {}
    for table in [*TABLES.values(), "product_document"]:
        key = "product_id" if table == "product_document" else "id"
        digest[table] = query(url, f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY {key})) FROM {table} t")[0]
    for table in TABLES.values():
        digest[f"{table}_id_seq"] = query(url, f"SELECT nextval('{table}_id_seq')")[0]
    return digest


def test_loading_twice_gives_the_same_database(database_factory, data_dir, tmp_path):
    url = database_factory("products")
    run_load(url, data_dir, tmp_path / "first")
    first = database_digest(url)
    run_load(url, data_dir, tmp_path / "second")
    assert database_digest(url) == first
    assert first["product"][0] > 0
    # the sequences hand out fresh ids
    assert first["product_id_seq"][0] > query(url, "SELECT max(id) FROM product")[0][0]
