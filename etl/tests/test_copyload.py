"""The fast path (PostgreSQL parses the clean records) gives exactly what the slow path (Python
parses every record) gives: same rows, same repairs, same rejects at the same lines, whatever
the block boundaries; on generated dirty data plus dirt the generator does not make."""
import csv
import hashlib
import io
from contextlib import closing

import psycopg2
import pytest

from atelier_etl import copyload
from atelier_etl.generate import generate
from atelier_etl.load import load_service

TABLES = {
    "products": ("product", "feature", "style", "photo", "sku", "related", "product_document"),
    "qa": ("question", "answer", "answer_photo"),
    "reviews": ("review", "review_photo", "characteristic", "characteristic_review", "characteristic_tally",
                "review_summary"),
}


def _append(path, text: bytes):
    with open(path, "ab") as handle:
        handle.write(text)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dirty")
    generate(folder, scale=0.002, seed=11, dirty=True, jobs=1, log=None)
    # dirt of other kinds, which must take the slow path and come out as it would there
    _append(folder / "reviews.csv",
            b'900001,5,4,1619873585896,"bad byte \xff here","b",true,false,"n","e",null,0\n'
            b'900002,5,4,1619873585896,"cr\r\nin text","b",true,false,"n","e","null",0\n'
            b'900003,5,4,1619873585896,unquoted summary,"b",true,false,"n","e",null,0\n'
            b'900004,5,4,1619873585896,"s","two\nlines ""quoted""",true,false,"n","e",null,0012\n'
            b'900005,5,4,1619873585896,"s","b",true,false,"n","e",null,5')  # no final line break
    _append(folder / "questions.csv",
            b'900001,5,"multi\nline, with comma",1595884714409,"x","x@e",0,1\n'
            b'0900002,5,"leading zero id",1595884714409,"x","x@e",0,1\n'
            b'900003,5,"nul \x00 byte",1595884714409,"x","x@e",0,1\n')
    _append(folder / "product.csv", b'900001,"P","S","D","C",4294967296\n900002,"P","S","D","C",007\n')
    return folder


def _digest(url, service):
    digest = {}
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        for table in TABLES[service]:
            buffer = io.StringIO()
            cur.copy_expert(f"COPY (SELECT * FROM {table} ORDER BY 1) TO STDOUT", buffer)
            digest[table] = hashlib.sha256(buffer.getvalue().encode()).hexdigest()
    return digest


def _rejects(folder):
    found = {}
    for path in sorted(folder.glob("*.rejects.csv")):
        with open(path, newline="") as handle:
            found[path.name] = sorted(map(tuple, csv.reader(handle)))
    return found


@pytest.mark.parametrize("service", ["products", "qa", "reviews"])
def test_the_fast_path_loads_what_the_slow_path_loads(service, data_dir, database_factory, tmp_path, monkeypatch):
    outcomes = []
    for fast, block in ((False, 1 << 20), (True, 1 << 20), (True, 3000)):
        monkeypatch.setattr(copyload, "FAST_PATH", fast)
        monkeypatch.setattr(copyload, "BLOCK", block)
        url = database_factory(service).owner  # the loader runs as the database's owner
        rejects = tmp_path / f"{fast}-{block}"
        reports = load_service(service, data_dir, rejects, url)
        outcomes.append(([(r.file, r.read, r.loaded, r.repaired, r.rejected, sorted(r.reasons.items()))
                          for r in reports], _digest(url, service), _rejects(rejects / service)))
        if fast:
            assert sum(r.slow for r in reports) < sum(r.read for r in reports) / 10
    assert outcomes[1] == outcomes[0]
    assert outcomes[2] == outcomes[0]
