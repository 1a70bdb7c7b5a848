"""Tests of the data generator (atelier_etl.generate) at small scales."""
import csv
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from atelier_etl import gen_core
from atelier_etl.generate import BOM_FILES, DIRT_KINDS, FILES, generate, row_counts

SCALE = 0.001
BOM = b"\xef\xbb\xbf"

# data.md's headers and full-size row counts, copied here on purpose: the
# generator's own table must agree with the contract.
CONTRACT = {
    "product.csv": ("id,name,slogan,description,category,default_price", 1_000_011),
    "features.csv": ("id,product_id,feature,value", 2_219_279),
    "styles.csv": ("id,productId,name,sale_price,original_price,default_style", 1_958_102),
    "photos.csv": ("id,styleId,url,thumbnail_url", 5_655_463),
    "skus.csv": ("id,styleId,size,quantity", 11_323_917),
    "related.csv": ("id,current_product_id,related_product_id", 4_508_263),
    "questions.csv": ("id,product_id,body,date_written,asker_name,asker_email,reported,helpful", 3_518_963),
    "answers.csv": ("id,question_id,body,date_written,answerer_name,answerer_email,reported,helpful", 6_879_306),
    "answers_photos.csv": ("id,answer_id,url", 2_063_759),
    "reviews.csv": ("id,product_id,rating,date,summary,body,recommend,reported,reviewer_name,"
                    "reviewer_email,response,helpfulness", 5_774_952),
    "reviews_photos.csv": ("id,review_id,url", 2_742_540),
    "characteristics.csv": ("id,product_id,name", 3_347_679),
    "characteristic_reviews.csv": ("id,characteristic_id,review_id,value", 19_327_575),
}
# child file -> [(column, parent file)]
FKS = {
    "features.csv": [(1, "product.csv")],
    "styles.csv": [(1, "product.csv")],
    "photos.csv": [(1, "styles.csv")],
    "skus.csv": [(1, "styles.csv")],
    "related.csv": [(1, "product.csv"), (2, "product.csv")],
    "questions.csv": [(1, "product.csv")],
    "answers.csv": [(1, "questions.csv")],
    "answers_photos.csv": [(1, "answers.csv")],
    "reviews.csv": [(1, "product.csv")],
    "reviews_photos.csv": [(1, "reviews.csv")],
    "characteristics.csv": [(1, "product.csv")],
    "characteristic_reviews.csv": [(1, "characteristics.csv"), (2, "reviews.csv")],
}
# dirt that makes a row unloadable: nothing may point at such a row
REJECTED = {"missing_field", "rating_missing", "rating_out_of_range", "characteristic_null_name",
            "duplicate_id"}
# dirt that makes a row's own reference bad
BAD_REF = {"orphan_parent", "related_zero", "related_self"}

ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
JS_RE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                   r"\d\d \d{4} \d\d:\d\d:\d\d GMT-0[45]00 \(Eastern (Daylight|Standard) Time\)$")
EMAIL_RE = re.compile(r"^[a-z]+\.[a-z]+\d*@[a-z]+\.com$")


# ---------------------------------------------------------------------------
# helpers

def records(path: Path):
    """[(physical start line, fields)] for every record, header included (line 1)."""
    out, prev = [], 0
    with open(path, newline="", encoding="utf-8-sig") as f:
        rd = csv.reader(f)
        for rec in rd:
            out.append((prev + 1, rec))
            prev = rd.line_num
    return out


def physical_lines(path: Path):
    with open(path, "rb") as f:
        return f.read().split(b"\n")


def load(d: Path):
    return {name: records(d / name) for name in FILES}


def read_manifest(d: Path):
    with open(d / "manifest.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "line", "kind", "id"]
    return [(f, int(line), kind, rid) for f, line, kind, rid in rows[1:]]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    d = tmp_path_factory.mktemp("clean")
    summary = generate(d, SCALE, seed=1, dirty=False, jobs=2, log=None)
    return d, summary, load(d)


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    d = tmp_path_factory.mktemp("dirty")
    generate(d, SCALE, seed=1, dirty=True, jobs=2, log=None)
    return d, load(d), read_manifest(d)


# ---------------------------------------------------------------------------
# format

def test_contract_table_matches():
    for name, (header, full) in CONTRACT.items():
        assert FILES[name][0] == header
        assert FILES[name][1] == full
    assert list(FILES) == list(CONTRACT)


def test_headers_exact(clean, dirty):
    for d in (clean[0], dirty[0]):
        for name, (header, _n) in CONTRACT.items():
            first = physical_lines(d / name)[0]
            if first.startswith(BOM):
                first = first[3:]
            assert first == header.encode(), name


def test_row_counts_proportional_to_scale(tmp_path, clean):
    _d, summary, data = clean
    for name, (_h, full) in CONTRACT.items():
        assert len(data[name]) - 1 == max(1, round(full * SCALE)) == summary[name][0], name
    d2 = tmp_path / "s3"
    s3 = generate(d2, 0.003, seed=1, jobs=2, log=None)
    for name, (_h, full) in CONTRACT.items():
        assert s3[name][0] == max(1, round(full * 0.003)), name
        assert len(records(d2 / name)) - 1 == s3[name][0]
    # at scale 1 the plan asks for data.md's numbers (within 1%)
    for name, rows in row_counts(1.0).items():
        assert abs(rows - CONTRACT[name][1]) <= CONTRACT[name][1] * 0.01
    assert row_counts(1e-9) == {name: 1 for name in FILES}


def test_clean_encodings(clean):
    d, _s, data = clean
    raw = {name: (d / name).read_bytes() for name in FILES}
    for name, blob in raw.items():
        assert not blob.startswith(BOM), name
        assert blob.endswith(b"\n")
    width = {name: len(h.split(",")) for name, (h, _n) in CONTRACT.items()}
    for name, recs in data.items():
        for line, rec in recs[1:]:
            assert len(rec) == width[name], (name, line, rec)
            assert rec[0].isdigit()
    for _l, rec in data["product.csv"][1:]:
        assert rec[5].isdigit() and 1 <= int(rec[5]) <= 1000
    for _l, rec in data["styles.csv"][1:]:
        assert rec[3] == "null" or rec[3].isdigit()
        assert rec[5] in ("0", "1")
    for _l, rec in data["features.csv"][1:]:
        assert rec[3] and rec[2]
    sizes = set(gen_core.CLOTHING_SIZES + gen_core.SHOE_SIZES)
    assert {rec[2] for _l, rec in data["skus.csv"][1:]} <= sizes
    assert "7.5" in {rec[2] for _l, rec in data["skus.csv"][1:]}
    for name in ("questions.csv", "answers.csv"):
        for _l, rec in data[name][1:]:
            assert re.fullmatch(r"1\d{12}", rec[3]) and rec[6] in ("0", "1") and rec[7].isdigit()
            assert EMAIL_RE.match(rec[5]), rec[5]
    for _l, rec in data["reviews.csv"][1:]:
        assert rec[2] in "12345" and len(rec[2]) == 1
        assert re.fullmatch(r"1\d{12}", rec[3])
        assert rec[6] in ("true", "false") and rec[7] in ("true", "false")
        assert EMAIL_RE.match(rec[9]), rec[9]
        assert rec[11].isdigit()
    assert {rec[2] for _l, rec in data["characteristics.csv"][1:]} == set(gen_core.CHAR_NAMES)
    assert {rec[3] for _l, rec in data["characteristic_reviews.csv"][1:]} <= set("12345")
    for name in ("photos.csv", "answers_photos.csv", "reviews_photos.csv"):
        for _l, rec in data[name][1:]:
            for url in rec[2:]:
                assert url.startswith("https://images.unsplash.com/photo-") and url.endswith("&q=80")
    # bare (unquoted) words and numbers, quoted text, exactly as data.md shows
    rv = raw["reviews.csv"].decode()
    assert re.search(r'\n\d+,\d+,[1-5],1\d{12},"[^"]', rv)
    assert ",true,false," in rv and ",null," in rv
    assert re.search(r',"Fit"\n', raw["characteristics.csv"].decode())
    assert re.search(r'\n\d+,\d+,"[^"]+",null\n', raw["features.csv"].decode())
    assert re.search(r'\n\d+,\d+,"[^"]+",null,\d+,[01]\n', raw["styles.csv"].decode())


def test_realistic_text(clean):
    d, _s, data = clean
    texts = [f for name in ("product.csv", "questions.csv", "answers.csv", "reviews.csv")
             for _l, rec in data[name][1:] for f in rec if not f.isdigit()]
    assert any("," in t for t in texts)
    assert any('"' in t for t in texts)  # written as a doubled quote
    assert any("\n" in t for t in texts)
    assert any(re.search(r"[éüöñçà]", t) for t in texts)
    assert any(re.search("[\U0001F300-\U0001FAFF]", t) for t in texts)
    assert b'""' in (d / "reviews.csv").read_bytes() + (d / "product.csv").read_bytes()
    # multi-line records really exist: more physical lines than records
    assert len(physical_lines(d / "reviews.csv")) - 1 > len(data["reviews.csv"])


# ---------------------------------------------------------------------------
# references and shape

def ids_of(recs):
    return [int(rec[0]) for _l, rec in recs[1:]]


def test_clean_references_all_valid(clean):
    _d, _s, data = clean
    ids = {name: set(ids_of(recs)) for name, recs in data.items()}
    for child, fks in FKS.items():
        for col, parent in fks:
            for line, rec in data[child][1:]:
                assert int(rec[col]) in ids[parent], (child, line, rec)
    for _l, rec in data["related.csv"][1:]:
        assert rec[2] != "0" and rec[2] != rec[1]


def test_characteristic_reviews_stay_within_product(clean):
    _d, _s, data = clean
    char_prod = {int(r[0]): int(r[1]) for _l, r in data["characteristics.csv"][1:]}
    review_prod = {int(r[0]): int(r[1]) for _l, r in data["reviews.csv"][1:]}
    pairs = Counter()
    for _l, r in data["characteristic_reviews.csv"][1:]:
        assert char_prod[int(r[1])] == review_prod[int(r[2])]
        pairs[(r[1], r[2])] += 1
    assert max(pairs.values()) == 1  # a review rates a characteristic once
    names = defaultdict(list)
    for _l, r in data["characteristics.csv"][1:]:
        names[r[1]].append(r[2])
    assert all(len(v) == len(set(v)) for v in names.values())


def test_ids_increasing_with_gaps(clean):
    _d, _s, data = clean
    gaps = 0
    for name, recs in data.items():
        ids = np.array(ids_of(recs))
        assert (np.diff(ids) > 0).all(), name
        gaps += int((np.diff(ids) > 1).sum())
    assert gaps > 0
    pids = np.array(ids_of(data["product.csv"]))
    assert pids[-1] - pids[0] + 1 > len(pids)  # product ids are not contiguous


def test_skewed_children_and_tail_ids(clean):
    _d, _s, data = clean
    pids = ids_of(data["product.csv"])
    per = Counter(int(r[1]) for _l, r in data["reviews.csv"][1:])
    counts = np.array([per.get(p, 0) for p in pids])
    assert (counts == 0).sum() > 0  # some products have none
    assert np.median(counts) <= 8  # most have a handful
    assert counts.max() >= 8 * max(1, np.median(counts))  # a few have many
    # the last 10% of the id range is populated and has children
    lo = pids[0] + 0.9 * (pids[-1] - pids[0])
    tail = [p for p in pids if p >= lo]
    assert len(tail) >= 0.08 * len(pids)
    styled = {int(r[1]) for _l, r in data["styles.csv"][1:]}
    assert sum(p in styled for p in tail) >= 0.9 * len(tail)
    assert sum(per.get(p, 0) > 0 for p in tail) >= 0.5 * len(tail)


# ---------------------------------------------------------------------------
# determinism

def test_same_seed_same_bytes_regardless_of_jobs(tmp_path, clean):
    d1 = clean[0]
    d2 = tmp_path / "j1"
    generate(d2, SCALE, seed=1, dirty=False, jobs=1, log=None)
    for name in list(FILES) + ["manifest.csv"]:
        assert (d1 / name).read_bytes() == (d2 / name).read_bytes(), name
    d3 = tmp_path / "seed2"
    generate(d3, SCALE, seed=2, dirty=False, jobs=2, log=None)
    assert all((d1 / n).read_bytes() != (d3 / n).read_bytes() for n in FILES)


def test_dirty_is_deterministic(tmp_path, dirty):
    d2 = tmp_path / "dirty1"
    generate(d2, SCALE, seed=1, dirty=True, jobs=1, log=None)
    for name in list(FILES) + ["manifest.csv"]:
        assert (dirty[0] / name).read_bytes() == (d2 / name).read_bytes(), name


# ---------------------------------------------------------------------------
# dirt

def test_clean_manifest_is_empty(clean):
    assert read_manifest(clean[0]) == []


def test_every_dirt_kind_present(dirty):
    _d, _data, manifest = dirty
    kinds = Counter(k for _f, _l, k, _i in manifest)
    assert set(kinds) == set(DIRT_KINDS)
    for kind in DIRT_KINDS:
        assert kinds[kind] >= (2 if kind == "bom" else 3), kind
    for f in ("answers_photos.csv", "reviews_photos.csv", "characteristic_reviews.csv"):
        assert any(m[0] == f and m[2] == "orphan_parent" for m in manifest), f
    dup_files = {f for f, _l, k, _i in manifest if k == "duplicate_id"}
    assert {"product.csv", "reviews.csv"} < dup_files
    assert len(set(manifest)) == len(manifest)


def test_manifest_lines_show_their_dirt(dirty):
    d, data, manifest = dirty
    by_line = {name: {line: rec for line, rec in recs} for name, recs in data.items()}
    ids = {name: {int(r[0]) for _l, r in recs[1:] if r and r[0].isdigit()} for name, recs in data.items()}
    lines = {name: physical_lines(d / name) for name in FILES}
    tz = _eastern()
    for f, line, kind, rid in manifest:
        raw = lines[f][line - 1]
        if kind == "bom":
            assert line == 1 and rid == ""
            assert (d / f).read_bytes().startswith(BOM)
            continue
        rec = by_line[f].get(line)
        assert rec is not None, (f, line, kind, "no record starts on that line")
        assert rec[0] == rid, (f, line, kind, rec[:3])
        if kind == "related_zero":
            assert rec[2] == "0"
        elif kind == "related_self":
            assert rec[2] == rec[1] != "0"
        elif kind == "photo_unclosed_quote":
            assert raw.count(b'"') % 2 == 1 and raw.endswith(b"&q=80")
            assert line + 1 not in by_line[f]  # the next physical line was swallowed
            assert "\n" in "".join(rec)
        elif kind == "photo_missing_thumbnail":
            assert len(rec) == 3 and raw.count(b'"') == 2
        elif kind == "orphan_parent":
            missing = [c for c, p in FKS[f] if int(rec[c]) not in ids[p]]
            assert len(missing) == 1, (f, line, rec)  # exactly the parent reference is bad
        elif kind == "characteristic_null_name":
            assert raw.endswith(b",null") and rec[2] == "null"
        elif kind == "price_format":
            assert re.search(rb',"( \d+|\$\d+)"$', raw), raw[-20:]
        elif kind == "missing_field":
            assert len(rec) == 5
        elif kind == "date_iso":
            assert ISO_RE.match(rec[3]), rec[3]
        elif kind == "date_js":
            assert JS_RE.match(rec[3]), rec[3]
            if tz:
                _check_js_offset(rec[3], tz)
        elif kind == "rating_missing":
            assert rec[2] == ""
        elif kind == "rating_out_of_range":
            assert rec[2].lstrip("-").isdigit() and not 1 <= int(rec[2]) <= 5
        elif kind == "duplicate_id":
            earlier = [n for n, r in data[f][1:] if n < line and r[0] == rid]
            assert earlier, (f, line)
        else:
            pytest.fail("unknown kind " + kind)
    boms = {f for f, _l, k, _i in manifest if k == "bom"}
    assert boms == set(BOM_FILES)
    for name in FILES:
        assert (d / name).read_bytes().startswith(BOM) == (name in boms)


def test_dirt_is_only_where_the_manifest_says(dirty):
    """Every row outside the manifest is clean, and its references point at loadable rows."""
    _d, data, manifest = dirty
    flagged = defaultdict(dict)
    for f, line, kind, _i in manifest:
        flagged[f][line] = kind
    width = {name: len(h.split(",")) for name, (h, _n) in CONTRACT.items()}
    good_ids = {}
    for name, recs in data.items():
        ok = set()
        last = 0
        for line, rec in recs[1:]:
            kind = flagged[name].get(line)
            if kind is None and not (name == "photos.csv" and len(rec) != 4):
                assert len(rec) == width[name], (name, line)
                assert int(rec[0]) > last, (name, line)
                last = int(rec[0])
            if kind not in REJECTED:
                ok.add(int(rec[0]))
        good_ids[name] = ok
    for child, fks in FKS.items():
        for line, rec in data[child][1:]:
            if flagged[child].get(line) in BAD_REF:
                continue
            for col, parent in fks:
                assert int(rec[col]) in good_ids[parent], (child, line, rec, parent)
    for line, rec in data["related.csv"][1:]:
        if line not in flagged["related.csv"]:
            assert rec[2] not in ("0", rec[1])
    for line, rec in data["reviews.csv"][1:]:
        if line not in flagged["reviews.csv"]:
            assert rec[2] in "12345" and rec[2] and re.fullmatch(r"1\d{12}", rec[3])


def test_dirt_counts_scale(tmp_path):
    from atelier_etl.generate import DIRT_FULL, dirt_count
    assert dirt_count("related.csv", "related_zero", 1.0, True) == 58
    assert dirt_count("photos.csv", "photo_unclosed_quote", 1.0, True) == 193
    assert dirt_count("photos.csv", "photo_unclosed_quote", 0.1, True) == 19
    assert all(dirt_count(f, k, 0.0001, True) == 3 for f, k in DIRT_FULL)
    assert all(dirt_count(f, k, 1.0, False) == 0 for f, k in DIRT_FULL)


# ---------------------------------------------------------------------------
# building blocks

def _eastern():
    try:
        from zoneinfo import ZoneInfo
        return ZoneInfo("America/New_York")
    except Exception:  # no tz database on this machine
        return None


def _check_js_offset(text, tz):
    import datetime as dt
    local = dt.datetime.strptime(text[4:24], "%b %d %Y %H:%M:%S")
    sign_h = int(text[28:31])
    instant = local.replace(tzinfo=dt.timezone(dt.timedelta(hours=sign_h)))
    real = instant.astimezone(tz)
    assert real.utcoffset() == dt.timedelta(hours=sign_h), text
    assert ("Daylight" in text) == bool(real.dst()), text
    assert real.strftime("%a") == text[:3]


def test_date_renderings():
    assert gen_core.iso_date(1610852519883) == "2021-01-17T03:01:59.883Z"
    assert gen_core.js_date(1619059182000) == "Wed Apr 21 2021 22:39:42 GMT-0400 (Eastern Daylight Time)"
    tz = _eastern()
    if tz is None:
        pytest.skip("no tz database")
    import datetime as dt
    # around both 2020/2021 DST switches, and a spread of instants
    probes = [1583650799000, 1583650800000, 1604210399000, 1604210400000,
              1615705199000, 1615705200000, 1636264799000, 1636264800000]
    probes += list(range(1590969600000, 1622505600000, 86_400_000 * 7 + 3_600_001))
    for ms in probes:
        text = gen_core.js_date(ms)
        assert JS_RE.match(text)
        _check_js_offset(text, tz)
        real = dt.datetime.fromtimestamp(ms // 1000, tz)
        assert text[:24] == real.strftime("%a %b %d %Y %H:%M:%S")


def test_chunk_render_matches_plain_join():
    rng = np.random.default_rng(5)
    pools = {"a": gen_core.Pool([b'"x,y",', b'"multi\nline",', b"null,"]),
             "b": gen_core.Pool([b'"\xc3\xa9t\xc3\xa9"\n', b'"q""q"\n', b"7\n"])}
    builder = gen_core.ChunkBuilder(pools)
    for n in (1, 7, 3000):
        c = builder.chunk(n)
        ids = rng.integers(0, 10**9, n)
        ia, ib = rng.integers(0, 3, n), rng.integers(0, 3, n)
        dates = rng.integers(10**12, 10**13, n)
        c.ints(ids)
        c.pick("a", ia)
        c.ints(dates)
        c.pick("b", ib)
        mask = ids % 5 == 0
        c.set_const(2, mask, "a", 2)
        expect = []
        for i in range(n):
            third = b"null," if mask[i] else b"%d," % dates[i]
            expect.append([b"%d," % ids[i], pools["a"].items[ia[i]], third, pools["b"].items[ib[i]]])
        c.replace(0, 1, b"")
        expect[0][1] = b""
        c.replace(n - 1, 3, b'"new\nvalue"\n')
        expect[n - 1][3] = b'"new\nvalue"\n'
        _buf, view, row_off, row_lines = c.render()
        joined = [b"".join(r) for r in expect]
        assert view.tobytes() == b"".join(joined)
        assert list(row_off) == list(np.cumsum([0] + [len(j) for j in joined[:-1]]))
        assert list(row_lines) == [j.count(b"\n") for j in joined]


def test_cli(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = tmp_path / "cli"
    p = subprocess.run([sys.executable, "-m", "atelier_etl.generate", "--scale", "0.0002",
                        "--dirty", "--seed", "3", "--out", str(out), "--jobs", "2"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "characteristic_reviews.csv" in p.stdout and "total" in p.stdout
    assert "done reviews.csv" in p.stderr
    assert sorted(x.name for x in out.iterdir()) == sorted(list(FILES) + ["manifest.csv"])
    assert len(read_manifest(out)) > 0
