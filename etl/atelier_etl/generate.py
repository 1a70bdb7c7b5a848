"""Generate the Atelier CSV data set (docs/data.md) at any scale.

    python -m atelier_etl.generate --scale 0.01 [--dirty] [--seed N] [--out DIR] [--jobs N]

Writes the 13 files of data.md (product.csv, features.csv, styles.csv, photos.csv,
skus.csv, related.csv, questions.csv, answers.csv, answers_photos.csv, reviews.csv,
reviews_photos.csv, characteristics.csv, characteristic_reviews.csv) with data.md's
exact headers and encodings, round(full-size rows x scale) data rows each (at
least 1), plus ``manifest.csv``. Scale 1 is ~70 million rows / ~7 GB.

The data is coherent: ids increase in file order with occasional gaps; every
child row points at an existing parent; a characteristic belongs to a product
and characteristic_reviews only link a review to characteristics of the
review's own product. Per-product child counts are skewed (multinomial over
log-normal popularity with a few "hot" products: most products have a handful
of reviews/questions, a few have hundreds, some none). Products are drawn
uniformly over the id range, so the last 10% of ids has the same mix.

Dirt (only with --dirty; clean output has none, and its manifest is just the
header). Each kind is injected in small known numbers, proportional to scale but
at least 3 (fewer only below scale ~0.0002, where tiny files have no room), and
data.md's figure, or a plausible one, at scale 1. Duplicate rows count toward a
file's rows. ``manifest.csv`` (``file,line,kind,id``) lists every
dirty record: ``line`` is the 1-based *physical* line where the record starts
(header = line 1; quoted line breaks are counted), ``id`` the record's id.

  related_zero             related.csv related_product_id = 0
  related_self             related.csv related_product_id = current_product_id
  photo_unclosed_quote     photos.csv thumbnail_url lacks its closing quote, so a CSV
                           parser swallows the *next physical line* into the field; that
                           neighbour (a normal photo row) is lost to the loader and is
                           not listed in the manifest
  photo_missing_thumbnail  photos.csv row with 3 fields (thumbnail_url absent)
  orphan_parent            answers_photos / reviews_photos / characteristic_reviews row
                           whose answer / review / characteristic id does not exist
  characteristic_null_name characteristics.csv name is the bare word null (~1%)
  price_format             product.csv default_price written as " 140" or "$818" (quoted)
  missing_field            product.csv row with the slogan or category field missing
  date_iso, date_js        reviews.csv date as 2021-01-17T03:01:59.883Z or as
                           Wed Apr 21 2021 22:39:42 GMT-0400 (Eastern Daylight Time)
                           (US Eastern; both render the row's real instant, unquoted)
  rating_missing           reviews.csv rating field empty
  rating_out_of_range      reviews.csv rating 0, 6, 7 or 9
  bom                      UTF-8 BOM before the header (product, photos, reviews); line 1, no id
  duplicate_id             product / styles / reviews / answers: an extra row reusing the
                           id of a row a few lines earlier, with other text (the manifest
                           lists the later one)

Dirt never breaks other rows: rows a loader must reject (missing_field products,
reviews with a bad rating, null-named characteristics) have no children and are
never a related target; duplicates are extra rows (the first occurrence is the
real one); a swallowed neighbour is a photo, which has no children.

Determinism: the skeleton (which ids exist, how many children each parent has,
where the dirt goes) comes from generators seeded with (seed, part, dirty); each
file is written in fixed-size chunks whose rows come from a generator seeded with
(seed, file, chunk, dirty); the text pools from (seed). Nothing depends on --jobs
or process scheduling, so the same scale + seed + dirty gives byte-identical
files (with the same numpy version). A dirty set is its own draw, not the clean
set plus dirt.

Speed: no per-row Python. Text comes from pools of already-quoted pieces
(``gen_core.build_pools``) picked by index; integers are rendered 4 digits per
table lookup; each chunk (~8 MB) is assembled with one numpy gather and written
in one call from a writer thread. Files are spread over --jobs forked worker
processes (largest first); the skeleton is built once before forking.
"""
from __future__ import annotations

import argparse
import ctypes
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .gen_core import (CATEGORIES, CLOTHING_CHAR_ORDER, CLOTHING_SIZES, SHOE_CHAR_ORDER,
                       SHOE_SIZES, ChunkBuilder, build_pools, iso_date, js_date)

# name -> (header, full-size rows, rows per chunk, estimated bytes per row)
FILES = {
    "product.csv": ("id,name,slogan,description,category,default_price", 1_000_011, 20_000, 370),
    "features.csv": ("id,product_id,feature,value", 2_219_279, 200_000, 30),
    "styles.csv": ("id,productId,name,sale_price,original_price,default_style", 1_958_102, 200_000, 40),
    "photos.csv": ("id,styleId,url,thumbnail_url", 5_655_463, 30_000, 280),
    "skus.csv": ("id,styleId,size,quantity", 11_323_917, 400_000, 20),
    "related.csv": ("id,current_product_id,related_product_id", 4_508_263, 400_000, 20),
    "questions.csv": ("id,product_id,body,date_written,asker_name,asker_email,reported,helpful",
                      3_518_963, 60_000, 140),
    "answers.csv": ("id,question_id,body,date_written,answerer_name,answerer_email,reported,helpful",
                    6_879_306, 60_000, 140),
    "answers_photos.csv": ("id,answer_id,url", 2_063_759, 60_000, 140),
    "reviews.csv": ("id,product_id,rating,date,summary,body,recommend,reported,reviewer_name,"
                    "reviewer_email,response,helpfulness", 5_774_952, 20_000, 420),
    "reviews_photos.csv": ("id,review_id,url", 2_742_540, 60_000, 140),
    "characteristics.csv": ("id,product_id,name", 3_347_679, 400_000, 20),
    "characteristic_reviews.csv": ("id,characteristic_id,review_id,value", 19_327_575, 400_000, 24),
}

# (file, kind) -> count at scale 1 (data.md's figure where it gives one)
DIRT_FULL = {
    ("related.csv", "related_zero"): 58,
    ("related.csv", "related_self"): 41,
    ("photos.csv", "photo_unclosed_quote"): 193,
    ("photos.csv", "photo_missing_thumbnail"): 120,
    ("answers_photos.csv", "orphan_parent"): 40,
    ("reviews_photos.csv", "orphan_parent"): 40,
    ("characteristic_reviews.csv", "orphan_parent"): 60,
    ("characteristics.csv", "characteristic_null_name"): 33_477,  # ~1% of rows
    ("product.csv", "price_format"): 100,
    ("product.csv", "missing_field"): 25,
    ("reviews.csv", "date_iso"): 500,
    ("reviews.csv", "date_js"): 500,
    ("reviews.csv", "rating_missing"): 40,
    ("reviews.csv", "rating_out_of_range"): 40,
    ("product.csv", "duplicate_id"): 20,
    ("styles.csv", "duplicate_id"): 20,
    ("reviews.csv", "duplicate_id"): 30,
    ("answers.csv", "duplicate_id"): 30,
}
DIRT_KINDS = sorted({k for _f, k in DIRT_FULL} | {"bom"})
BOM_FILES = ("product.csv", "photos.csv", "reviews.csv")
BOM = b"\xef\xbb\xbf"

DATE_LO = 1_590_969_600_000  # 2020-06-01 UTC, epoch ms
DATE_HI = 1_622_505_600_000  # 2021-06-01 UTC
GAP_RATE = 0.002  # share of ids followed by a gap of 1..39 unused ids
_SHOE = np.array([c[2] for c in CATEGORIES])


# ---------------------------------------------------------------------------
# skeleton

def _gapped_ids(rng, n: int, after: int = 0) -> np.ndarray:
    """n increasing ids greater than `after`: mostly +1, now and then a gap."""
    steps = np.ones(n, np.int64)
    k = max(int(rng.binomial(n, GAP_RATE)), min(3, n // 50)) if n else 0  # gaps even when tiny
    if k:
        steps[rng.integers(0, n, k)] += rng.integers(1, 40, k)
    return after + np.cumsum(steps)


def _spread(rng, total: int, weights: np.ndarray) -> np.ndarray:
    """Split total over len(weights) parents, each getting ~ its weight's share."""
    w = np.asarray(weights, np.float64)
    if total == 0 or len(w) == 0:
        return np.zeros(len(w), np.int64)
    if w.sum() <= 0:
        w = np.ones(len(w))
    return rng.multinomial(total, w / w.sum()).astype(np.int64)


def _fit_total(rng, counts, total: int, lo, hi) -> np.ndarray:
    """Nudge counts (within lo..hi per item) by +-1 at random until they sum to total."""
    lo = np.broadcast_to(np.asarray(lo, np.int64), counts.shape)
    hi = np.broadcast_to(np.asarray(hi, np.int64), counts.shape)
    c = np.clip(counts, lo, hi).astype(np.int64)
    diff = total - int(c.sum())
    while diff:
        step = 1 if diff > 0 else -1
        room = np.flatnonzero(c < hi if step > 0 else c > lo)
        if room.size == 0:
            raise ValueError("cannot fit counts to total %d" % total)
        k = min(abs(diff), room.size)
        c[rng.choice(room, k, replace=False)] += step
        diff -= step * k
    return c


def _dirt_slots(n: int) -> int:
    return max(0, (n - 1) // 3)


def _pick_dirt(rng, n: int, counts: dict[str, int]) -> dict[str, np.ndarray]:
    """Distinct positions in range(n) for each kind, never adjacent to each other
    nor the last one (a dirty row's neighbour stays clean)."""
    want = sum(counts.values())
    if want > _dirt_slots(n):
        raise ValueError("no room for %d dirty rows among %d" % (want, n))
    pos = 3 * rng.choice(_dirt_slots(n), want, replace=False) + rng.integers(0, 2, want)
    out, at = {}, 0
    for kind, k in counts.items():
        out[kind] = np.sort(pos[at:at + k])
        at += k
    return out


def _ends(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts)


def _parent_of(ends: np.ndarray, j: np.ndarray) -> np.ndarray:
    """For child rows j (0-based, in file order), the index of their parent."""
    return np.searchsorted(ends, j, side="right")


def _first_child(ends: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Row index of the first child of parents p."""
    return np.where(p > 0, ends[p - 1], 0)


@dataclass
class Plan:
    scale: float
    seed: int
    dirty: bool
    rows: dict = field(default_factory=dict)        # file -> data rows to write
    entities: dict = field(default_factory=dict)    # file -> rows minus duplicate rows
    dirt: dict = field(default_factory=dict)        # file -> kind -> sorted entity positions
    dups: dict = field(default_factory=dict)        # file -> (src entities, insert-after entities)
    orphan_ids: dict = field(default_factory=dict)  # parent kind -> ids that do not exist
    a: dict = field(default_factory=dict)           # skeleton arrays


def row_counts(scale: float) -> dict[str, int]:
    """Data rows per file: round(full-size rows x scale), at least 1."""
    return {name: max(1, round(spec[1] * scale)) for name, spec in FILES.items()}


def dirt_count(file: str, kind: str, scale: float, dirty: bool) -> int:
    """How many rows of this kind of dirt `file` gets (before fitting a tiny file)."""
    if not dirty:
        return 0
    return max(3, round(DIRT_FULL[(file, kind)] * scale))


def file_dirt(file: str, scale: float, dirty: bool) -> dict[str, int]:
    """Dirt counts of one file, trimmed when a tiny file (scale < ~0.0002) has
    no room for them all."""
    counts = {k: dirt_count(f, k, scale, dirty) for f, k in DIRT_FULL
              if f == file and k != "characteristic_null_name"}
    rows = row_counts(scale)[file]
    while sum(counts.values()) > _dirt_slots(rows - counts.get("duplicate_id", 0)):
        biggest = max(counts, key=counts.get)
        counts[biggest] -= 1
    return counts


def _missing_ids(rng, ids: np.ndarray, k: int = 64) -> np.ndarray:
    """Ids that do not exist: inside gaps of `ids` where there are gaps, else past the end."""
    gaps = np.flatnonzero(np.diff(ids) > 1)
    cand = ids[gaps] + 1 if gaps.size else np.empty(0, np.int64)
    cand = np.concatenate([cand, ids[-1] + np.arange(1, 4) if len(ids) else np.arange(1, 4)])
    return rng.choice(cand, min(k, cand.size), replace=False)


def build_plan(scale: float, seed: int, dirty: bool) -> Plan:
    """Decide which rows exist, who their parents are and where the dirt goes."""
    plan = Plan(scale, seed, dirty)
    A = plan.a
    plan.rows = row_counts(scale)

    def rng(part: int):
        return np.random.default_rng([seed, 1000 + part, int(dirty)])

    def dirt_of(name, n_entities, r):
        picked = _pick_dirt(r, n_entities, file_dirt(name, scale, dirty))
        plan.dirt[name] = {k: v for k, v in picked.items() if k != "duplicate_id"}
        if "duplicate_id" in picked:
            src = picked["duplicate_id"]
            R = FILES[name][2]
            chunk_end = np.minimum((src // R + 1) * R, n_entities)
            after = np.minimum(src + r.integers(1, 8, len(src)), chunk_end - 1)
            plan.dups[name] = (src, after)
        return plan.dirt[name]

    def entities(name):  # rows that are not duplicates
        plan.entities[name] = plan.rows[name] - file_dirt(name, scale, dirty).get("duplicate_id", 0)
        return plan.entities[name]

    # products ------------------------------------------------------------
    r = rng(1)
    NP = entities("product.csv")
    A["p_id"] = _gapped_ids(r, NP)
    cat_w = np.array([c[1] for c in CATEGORIES], np.float64)
    A["p_cat"] = r.choice(len(CATEGORIES), NP, p=cat_w / cat_w.sum())
    A["p_price"] = np.clip(np.rint(r.lognormal(np.log(70), 0.75, NP)), 1, 1000).astype(np.int64)
    d = dirt_of("product.csv", NP, r)
    good = np.ones(NP, bool)
    good[d.get("missing_field", [])] = False  # such a row is rejected: no children
    A["p_good"] = good
    A["good_idx"] = np.flatnonzero(good)
    A["good_rank"] = np.cumsum(good) - 1
    pop = r.lognormal(0, 0.8, NP)
    pop[r.random(NP) < 0.001] *= 25  # a few products everybody reviews: hundreds of reviews
    np.minimum(pop, 200, out=pop)
    pop *= good

    # features, styles, photos, skus, related ---------------------------------
    r = rng(2)
    A["f_ends"] = _ends(_spread(r, plan.rows["features.csv"], r.lognormal(0, 0.3, NP) * good))
    NS = entities("styles.csv")
    dirt_of("styles.csv", NS, r)
    n_good = int(good.sum())
    w = r.lognormal(0, 0.6, NP) * good
    if NS >= n_good:  # every product that can have children gets a style
        s_counts = good.astype(np.int64) + _spread(r, NS - n_good, w)
    else:
        s_counts = _spread(r, NS, w)
    A["s_prod"] = np.repeat(np.arange(NP), s_counts)
    A["s_id"] = _gapped_ids(r, NS)
    A["s_first"] = np.cumsum(s_counts) - s_counts  # index of each product's first style
    A["ph_ends"] = _ends(_spread(r, plan.rows["photos.csv"], r.lognormal(0, 0.5, NS)))
    shoe = _SHOE[A["p_cat"][A["s_prod"]]]
    hi = np.where(shoe, len(SHOE_SIZES), len(CLOTHING_SIZES)).astype(np.int64)
    n_sku = plan.rows["skus.csv"]
    cap = hi * max(1, -(-n_sku // max(1, int(hi.sum()))))  # sizes repeat only at tiny scales
    sku = _fit_total(r, hi - r.integers(0, 3, NS), n_sku, 1 if n_sku >= NS else 0, cap)
    A["sku_ends"] = _ends(sku)
    A["sku_off"] = (r.integers(0, 1 << 30, NS) % np.maximum(hi - sku + 1, 1))
    A["s_shoe"] = shoe
    A["rel_ends"] = _ends(_spread(r, plan.rows["related.csv"], r.lognormal(0, 0.4, NP) * good))
    dirt_of("related.csv", plan.rows["related.csv"], r)
    dirt_of("photos.csv", plan.rows["photos.csv"], r)

    # questions, answers, answer photos ----------------------------------------
    r = rng(3)
    NQ = plan.rows["questions.csv"]
    qw = pop * r.lognormal(0, 0.5, NP) * (r.random(NP) >= 0.10)
    A["q_prod"] = np.repeat(np.arange(NP), _spread(r, NQ, qw if qw.sum() > 0 else good))
    A["q_id"] = _gapped_ids(r, NQ)
    A["q_date"] = r.integers(DATE_LO, DATE_HI, NQ)
    NA = entities("answers.csv")
    dirt_of("answers.csv", NA, r)
    aw = r.lognormal(0, 0.8, NQ) * (r.random(NQ) >= 0.2)
    A["a_q"] = np.repeat(np.arange(NQ), _spread(r, NA, aw))
    A["a_id"] = _gapped_ids(r, NA)
    A["ap_ends"] = _ends(_spread(r, plan.rows["answers_photos.csv"],
                                 r.lognormal(0, 1.0, NA) * (r.random(NA) < 0.15)))
    dirt_of("answers_photos.csv", plan.rows["answers_photos.csv"], r)
    plan.orphan_ids["answer"] = _missing_ids(r, A["a_id"])

    # reviews, review photos -------------------------------------------------
    r = rng(4)
    NR = entities("reviews.csv")
    rw = pop * (r.random(NP) >= 0.08)
    r_counts = _spread(r, NR, rw if rw.sum() > 0 else good)
    A["r_prod"] = np.repeat(np.arange(NP), r_counts)
    A["r_id"] = _gapped_ids(r, NR)
    d = dirt_of("reviews.csv", NR, r)
    r_good = np.ones(NR, bool)  # a review with a bad rating is rejected: no children
    r_good[d.get("rating_missing", [])] = False
    r_good[d.get("rating_out_of_range", [])] = False
    A["rp_ends"] = _ends(_spread(r, plan.rows["reviews_photos.csv"],
                                 r.lognormal(0, 1.0, NR) * (r.random(NR) < 0.3) * r_good))
    dirt_of("reviews_photos.csv", plan.rows["reviews_photos.csv"], r)
    plan.orphan_ids["review"] = _missing_ids(r, A["r_id"])

    # characteristics and their ratings --------------------------------------
    r = rng(5)
    NC = plan.rows["characteristics.csv"]
    n_null = min(dirt_count("characteristics.csv", "characteristic_null_name", scale, dirty), NC // 2)
    rv = np.bincount(A["r_prod"][r_good], minlength=NP)  # reviews that rate characteristics
    # valid characteristics per product (0..6): fewer on products nobody reviews
    reviewed = [0.02, 0.10, 0.18, 0.27, 0.28, 0.09, 0.06]
    unreviewed = [0.25, 0.25, 0.2, 0.15, 0.1, 0.05, 0.0]
    nv = np.where(rv > 0, r.choice(7, NP, p=reviewed), r.choice(7, NP, p=unreviewed))
    nv = _fit_total(r, nv * good, NC - n_null, 0, 6 * good)
    n_rate = plan.rows["characteristic_reviews.csv"]
    nv = _cover_ratings(nv, rv, n_rate, good)
    nn = np.bincount(r.choice(A["good_idx"], n_null), minlength=NP) if n_null else np.zeros(NP, np.int64)
    per_prod = nv + nn
    c_prod = np.repeat(np.arange(NP), per_prod)
    rank = np.arange(NC) - np.repeat(np.cumsum(per_prod) - per_prod, per_prod)
    valid = rank < np.repeat(nv, per_prod)
    # null-named ones land between the valid ones (sort key: rank, or a random slot)
    key = np.where(valid, rank.astype(np.float64), r.random(NC) * np.repeat(np.maximum(nv, 1), per_prod) - 0.5)
    order = np.argsort(c_prod * 8.0 + (key + 0.5), kind="stable") if n_null else np.arange(NC)
    valid, rank = valid[order], rank[order]
    names = np.where(_SHOE[A["p_cat"][c_prod]], np.array(SHOE_CHAR_ORDER)[np.minimum(rank, 5)],
                     np.array(CLOTHING_CHAR_ORDER)[np.minimum(rank, 5)])
    A["c_prod"] = c_prod
    A["c_name"] = np.where(valid, names, 6)  # 6 = the bare word null
    A["c_id"] = _gapped_ids(r, NC)
    A["vc_id"] = A["c_id"][valid]  # rateable characteristics, grouped by product
    A["vc_start"] = np.cumsum(nv) - nv
    A["nv"] = nv
    plan.dirt["characteristics.csv"] = {"characteristic_null_name": np.flatnonzero(~valid)}
    # each good review rates its product's characteristics; drop a few ratings
    # at random so the total is exact
    rated = np.where(r_good, nv[A["r_prod"]], 0)
    rated = _fit_total(r, rated, n_rate, np.minimum(rated, 1), rated)
    A["cr_ends"] = _ends(rated)
    dirt_of("characteristic_reviews.csv", n_rate, r)
    plan.orphan_ids["characteristic"] = _missing_ids(r, A["c_id"])
    return plan


def _cover_ratings(nv, rv, target, good):
    """Move characteristics from rarely- to often-reviewed products until the
    reviews can produce `target` ratings (sum of nv x reviews >= target)."""
    nv = nv.copy()
    while int((nv * rv).sum()) < target:
        need = target - int((nv * rv).sum())
        donors = np.flatnonzero(nv > 0)
        takers = np.flatnonzero((nv < 6) & good)
        donors = donors[np.argsort(rv[donors], kind="stable")]
        takers = takers[np.argsort(-rv[takers], kind="stable")]
        m = min(donors.size, takers.size)
        gain = rv[takers[:m]] - rv[donors[:m]]
        m = int(np.searchsorted(-gain, 0, side="left"))  # pairs that gain something
        if m == 0:
            raise ValueError("scale too small: not enough reviews for %d characteristic ratings" % target)
        k = min(m, int(np.searchsorted(np.cumsum(gain[:m]), need)) + 1)
        np.add.at(nv, donors[:k], -1)
        np.add.at(nv, takers[:k], 1)
    return nv


# ---------------------------------------------------------------------------
# per-file row builders: each returns (chunk, [(row, kind, id), ...])

POOLS_OF = {
    "product.csv": ["pname", "slogan", "desc_a", "desc_b", "category"],
    "features.csv": ["feature"],
    "styles.csv": ["style", "null_c", "digit_nl"],
    "photos.csv": ["photo"],
    "skus.csv": ["size"],
    "related.csv": [],
    "questions.csv": ["qbody", "person", "flag01"],
    "answers.csv": ["abody_a", "abody_b", "person", "flag01"],
    "answers_photos.csv": ["aphoto"],
    "reviews.csv": ["rating", "summary", "rbody_a", "rbody_b", "recrep", "person", "response"],
    "reviews_photos.csv": ["rphoto"],
    "characteristics.csv": ["charname"],
    "characteristic_reviews.csv": ["digit_nl"],
}


class _FileGen:
    """State of one file being written: plan, pools, builder, running leaf id."""

    def __init__(self, plan: Plan, pools, name: str):
        self.plan, self.name, self.a = plan, name, plan.a
        self.pools = {k: pools[k] for k in POOLS_OF[name]}
        self.builder = ChunkBuilder(self.pools)
        self.last_id = 0

    def leaf_ids(self, rng, n):
        ids = _gapped_ids(rng, n, self.last_id)
        if n:
            self.last_id = int(ids[-1])
        return ids

    def rows(self, a: int, b: int):
        """Entity indices shown by the chunk's rows (duplicates inserted), and which rows are duplicates."""
        ent = np.arange(a, b)
        dup = np.zeros(b - a, bool)
        if self.name in self.plan.dups:
            src, after = self.plan.dups[self.name]
            sel = (src >= a) & (src < b)
            if sel.any():
                at = after[sel] - a + 1
                ent = np.insert(ent, at, src[sel])
                dup = np.insert(dup, at, True)
        return ent, dup

    def dirt_rows(self, kind, a, b, dup=None):
        """Rows of this chunk holding entities marked with dirt `kind`."""
        pos = self.plan.dirt.get(self.name, {}).get(kind)
        if pos is None or len(pos) == 0:
            return np.empty(0, np.int64)
        e = pos[(pos >= a) & (pos < b)] - a
        return e if dup is None else np.flatnonzero(~dup)[e]


def _table(weights) -> np.ndarray:
    """Lookup table for a small discrete distribution: table[rng.integers(len)]."""
    return np.repeat(np.arange(len(weights)), weights)


_HELPFUL = _table([30, 20, 14, 10, 7, 5, 4, 3, 2, 2, 1, 1, 1])  # 0..12, mostly small
_RATING = _table([5, 8, 17, 30, 40])  # index into the "1,".."5," pool
_VALUE = _table([0, 5, 10, 30, 35, 20])  # 1..5


def _grouped(parent: np.ndarray):
    """(first parent, parent - first): to format each parent's id once per chunk."""
    p0 = int(parent[0]) if len(parent) else 0
    return p0, parent - p0


def _product(g: _FileGen, rng, a, b):
    A, pools = g.a, g.pools
    ent, dup = g.rows(a, b)
    n = len(ent)
    c = g.builder.chunk(n)
    cat = A["p_cat"][ent]
    blocks = pools["pname"].blocks[cat]
    c.ints(A["p_id"][ent])
    c.pick("pname", blocks[:, 0] + rng.integers(0, 1 << 30, n) % blocks[:, 1])
    c.pick("slogan", rng.integers(0, len(pools["slogan"]), n))
    c.pick("desc_a", rng.integers(0, len(pools["desc_a"]), n))
    c.pick("desc_b", rng.integers(0, len(pools["desc_b"]), n))
    c.pick("category", cat)
    c.ints(A["p_price"][ent], b"\n")
    dirt = [(int(i), "duplicate_id") for i in np.flatnonzero(dup)]
    for i in g.dirt_rows("price_format", a, b, dup):
        price = int(A["p_price"][ent[i]])
        c.replace(i, 6, (b'" %d"\n' if i % 2 else b'"$%d"\n') % price)
        dirt.append((int(i), "price_format"))
    for i in g.dirt_rows("missing_field", a, b, dup):
        c.replace(i, 2 if i % 2 else 5, b"")  # slogan or category: the columns shift
        dirt.append((int(i), "missing_field"))
    return c, [(i, k, int(A["p_id"][ent[i]])) for i, k in dirt]


def _features(g: _FileGen, rng, a, b):
    A = g.a
    j = np.arange(a, b)
    p = _parent_of(A["f_ends"], j)
    rank = j - _first_child(A["f_ends"], p)
    c = g.builder.chunk(b - a)
    c.ints(g.leaf_ids(rng, b - a))
    p0, rows = _grouped(p)
    c.ints(A["p_id"][p0:p0 + int(rows.max()) + 1], rows=rows)
    n_feat = len(g.pools["feature"])
    c.pick("feature", (p * 13 + rank * 7 + rng.integers(0, 2, b - a)) % n_feat)  # varied within a product
    return c, []


def _styles(g: _FileGen, rng, a, b):
    A = g.a
    ent, dup = g.rows(a, b)
    n = len(ent)
    prod = A["s_prod"][ent]
    c = g.builder.chunk(n)
    c.ints(A["s_id"][ent])
    c.ints(A["p_id"][prod])
    c.pick("style", rng.integers(0, len(g.pools["style"]), n))
    orig = A["p_price"][prod]
    sale = np.maximum(1, orig * rng.integers(50, 95, n) // 100)
    col = c.ints(sale)
    c.set_const(col, rng.integers(0, 10, n) >= 3, "null_c", 0)  # 70% not on sale
    c.ints(orig)
    c.pick("digit_nl", (ent == A["s_first"][prod]).astype(np.int64))
    return c, [(int(i), "duplicate_id", int(A["s_id"][ent[i]])) for i in np.flatnonzero(dup)]


def _photos(g: _FileGen, rng, a, b):
    A = g.a
    n = b - a
    s = _parent_of(A["ph_ends"], np.arange(a, b))
    c = g.builder.chunk(n)
    ids = g.leaf_ids(rng, n)
    c.ints(ids)
    s0, rows = _grouped(s)
    c.ints(A["s_id"][s0:s0 + int(rows.max()) + 1], rows=rows)
    k = len(g.pools["photo"]) // 3  # normal, unclosed-quote, missing-thumbnail variants
    idx = rng.integers(0, k, n)
    dirt = []
    for variant, kind in ((1, "photo_unclosed_quote"), (2, "photo_missing_thumbnail")):
        rows_d = g.dirt_rows(kind, a, b)
        idx[rows_d] += variant * k
        dirt += [(int(i), kind, int(ids[i])) for i in rows_d]
    c.pick("photo", idx)
    return c, dirt


def _skus(g: _FileGen, rng, a, b):
    A = g.a
    n = b - a
    j = np.arange(a, b)
    s = _parent_of(A["sku_ends"], j)
    first = _first_child(A["sku_ends"], s)
    shoe = A["s_shoe"][s]
    n_sizes = np.where(shoe, len(SHOE_SIZES), len(CLOTHING_SIZES))
    size = np.where(shoe, len(CLOTHING_SIZES), 0) + (A["sku_off"][s] + j - first) % n_sizes
    c = g.builder.chunk(n)
    c.ints(g.leaf_ids(rng, n))
    s0, rows = _grouped(s)
    c.ints(A["s_id"][s0:s0 + int(rows.max()) + 1], rows=rows)
    c.pick("size", size)
    qty = rng.integers(0, 60, n)
    qty[rng.integers(0, 20, n) == 0] = 0  # some sizes sold out
    c.ints(qty, b"\n")
    return c, []


def _related(g: _FileGen, rng, a, b):
    A = g.a
    n = b - a
    p = _parent_of(A["rel_ends"], np.arange(a, b))
    good_idx = A["good_idx"]
    t = rng.integers(0, max(1, len(good_idx) - 1), n)
    t += t >= A["good_rank"][p]  # skip the product itself
    target = A["p_id"][good_idx[np.minimum(t, len(good_idx) - 1)]]
    ids = g.leaf_ids(rng, n)
    dirt = []
    for kind in ("related_zero", "related_self"):
        rows_d = g.dirt_rows(kind, a, b)
        target[rows_d] = 0 if kind == "related_zero" else A["p_id"][p[rows_d]]
        dirt += [(int(i), kind, int(ids[i])) for i in rows_d]
    c = g.builder.chunk(n)
    c.ints(ids)
    p0, rows = _grouped(p)
    c.ints(A["p_id"][p0:p0 + int(rows.max()) + 1], rows=rows)
    c.ints(target, b"\n")
    return c, dirt


def _questions(g: _FileGen, rng, a, b):
    A, pools = g.a, g.pools
    n = b - a
    c = g.builder.chunk(n)
    c.ints(A["q_id"][a:b])
    c.ints(A["p_id"][A["q_prod"][a:b]])
    c.pick("qbody", rng.integers(0, len(pools["qbody"]), n))
    c.ints(A["q_date"][a:b])
    c.pick("person", rng.integers(0, len(pools["person"]), n))
    c.pick("flag01", (rng.integers(0, 25, n) == 0).astype(np.int64))
    c.ints(_HELPFUL[rng.integers(0, len(_HELPFUL), n)] + (rng.integers(0, 50, n) == 0) * 40, b"\n")
    return c, []


def _answers(g: _FileGen, rng, a, b):
    A, pools = g.a, g.pools
    ent, dup = g.rows(a, b)
    n = len(ent)
    q = A["a_q"][ent]
    c = g.builder.chunk(n)
    c.ints(A["a_id"][ent])
    c.ints(A["q_id"][q])
    c.pick("abody_a", rng.integers(0, len(pools["abody_a"]), n))
    c.pick("abody_b", rng.integers(0, len(pools["abody_b"]), n))
    c.ints(A["q_date"][q] + rng.integers(3_600_000, 60 * 86_400_000, n))  # after the question
    c.pick("person", rng.integers(0, len(pools["person"]), n))
    c.pick("flag01", (rng.integers(0, 25, n) == 0).astype(np.int64))
    c.ints(_HELPFUL[rng.integers(0, len(_HELPFUL), n)], b"\n")
    return c, [(int(i), "duplicate_id", int(A["a_id"][ent[i]])) for i in np.flatnonzero(dup)]


def _photo_rows(g: _FileGen, rng, a, b, ends, parent_ids, orphans, pool):
    n = b - a
    p = _parent_of(ends, np.arange(a, b))
    c = g.builder.chunk(n)
    ids = g.leaf_ids(rng, n)
    c.ints(ids)
    p0, rows = _grouped(p)
    c.ints(parent_ids[p0:p0 + int(rows.max()) + 1], rows=rows)
    c.pick(pool, rng.integers(0, len(g.pools[pool]), n))
    dirt = []
    for i in g.dirt_rows("orphan_parent", a, b):
        c.replace(i, 1, b"%d," % orphans[(a + i) % len(orphans)])
        dirt.append((int(i), "orphan_parent", int(ids[i])))
    return c, dirt


def _answers_photos(g, rng, a, b):
    return _photo_rows(g, rng, a, b, g.a["ap_ends"], g.a["a_id"], g.plan.orphan_ids["answer"], "aphoto")


def _reviews_photos(g, rng, a, b):
    return _photo_rows(g, rng, a, b, g.a["rp_ends"], g.a["r_id"], g.plan.orphan_ids["review"], "rphoto")


def _reviews(g: _FileGen, rng, a, b):
    A, pools = g.a, g.pools
    ent, dup = g.rows(a, b)
    n = len(ent)
    c = g.builder.chunk(n)
    ids = A["r_id"][ent]
    c.ints(ids)
    c.ints(A["p_id"][A["r_prod"][ent]])
    rating = _RATING[rng.integers(0, len(_RATING), n)]
    c.pick("rating", rating)
    date = rng.integers(DATE_LO, DATE_HI, n)
    c.ints(date)
    c.pick("summary", rng.integers(0, len(pools["summary"]), n))
    c.pick("rbody_a", rng.integers(0, len(pools["rbody_a"]), n))
    c.pick("rbody_b", rng.integers(0, len(pools["rbody_b"]), n))
    recommend = rng.integers(0, 10, n) < np.where(rating >= 2, 9, 3)  # mostly yes for 3+ stars
    reported = rng.integers(0, 50, n) == 0
    c.pick("recrep", (~recommend) + 2 * reported)
    c.pick("person", rng.integers(0, len(pools["person"]), n))
    resp = rng.integers(0, len(pools["response"]), n) * (rng.integers(0, 10, n) == 0)
    c.pick("response", resp)
    c.ints(_HELPFUL[rng.integers(0, len(_HELPFUL), n)] + (rng.integers(0, 40, n) == 0) * 20, b"\n")
    dirt = [(int(i), "duplicate_id") for i in np.flatnonzero(dup)]
    for i in g.dirt_rows("rating_missing", a, b, dup):
        c.replace(i, 2, b",")
        dirt.append((int(i), "rating_missing"))
    for i in g.dirt_rows("rating_out_of_range", a, b, dup):
        c.replace(i, 2, b"%d," % (0, 6, 7, 9)[i % 4])
        dirt.append((int(i), "rating_out_of_range"))
    for kind, render in (("date_iso", iso_date), ("date_js", js_date)):
        for i in g.dirt_rows(kind, a, b, dup):
            c.replace(i, 3, render(int(date[i])).encode() + b",")
            dirt.append((int(i), kind))
    return c, [(i, k, int(ids[i])) for i, k in dirt]


def _characteristics(g: _FileGen, rng, a, b):
    A = g.a
    c = g.builder.chunk(b - a)
    ids = A["c_id"][a:b]
    c.ints(ids)
    p0, rows = _grouped(A["c_prod"][a:b])
    c.ints(A["p_id"][p0:p0 + int(rows.max()) + 1], rows=rows)
    names = A["c_name"][a:b]
    c.pick("charname", names)
    return c, [(int(i), "characteristic_null_name", int(ids[i])) for i in np.flatnonzero(names == 6)]


def _characteristic_reviews(g: _FileGen, rng, a, b):
    A = g.a
    n = b - a
    j = np.arange(a, b)
    ri = _parent_of(A["cr_ends"], j)
    k = j - _first_child(A["cr_ends"], ri)
    p = A["r_prod"][ri]
    nv = A["nv"][p]
    char = A["vc_id"][A["vc_start"][p] + (k + ri) % nv]  # rotate so dropped ratings vary
    c = g.builder.chunk(n)
    ids = g.leaf_ids(rng, n)
    c.ints(ids)
    c.ints(char)
    r0, rows = _grouped(ri)
    c.ints(A["r_id"][r0:r0 + int(rows.max()) + 1], rows=rows)
    c.pick("digit_nl", _VALUE[rng.integers(0, len(_VALUE), n)])
    dirt = []
    for i in g.dirt_rows("orphan_parent", a, b):
        side = "characteristic" if i % 2 else "review"
        orphans = g.plan.orphan_ids[side]
        c.replace(i, 1 if side == "characteristic" else 2, b"%d," % orphans[(a + i) % len(orphans)])
        dirt.append((int(i), "orphan_parent", int(ids[i])))
    return c, dirt


BUILDERS = {
    "product.csv": _product, "features.csv": _features, "styles.csv": _styles,
    "photos.csv": _photos, "skus.csv": _skus, "related.csv": _related,
    "questions.csv": _questions, "answers.csv": _answers, "answers_photos.csv": _answers_photos,
    "reviews.csv": _reviews, "reviews_photos.csv": _reviews_photos,
    "characteristics.csv": _characteristics, "characteristic_reviews.csv": _characteristic_reviews,
}
FILE_NO = {name: i for i, name in enumerate(FILES)}


# ---------------------------------------------------------------------------
# writing

class _BackgroundWriter:
    """Writes chunks from a thread so the disk works while the next chunk is built."""

    def __init__(self, f):
        self.f = f
        self.q: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            try:
                view = memoryview(item).cast("B")
                while self.error is None and view.nbytes:  # raw writes may be partial
                    view = view[self.f.write(view):]
            except BaseException as e:  # re-raised in close()
                self.error = e

    def write(self, data):
        self.q.put(data)

    def close(self):
        self.q.put(None)
        self.t.join()
        if self.error:
            raise self.error


def write_file(plan: Plan, pools, name: str, out_dir: Path, progress=None):
    """Write one CSV (as name.tmp). Returns (name, rows, bytes, manifest rows, seconds)."""
    t0 = time.monotonic()
    g = _FileGen(plan, pools, name)
    build = BUILDERS[name]
    n_ent = plan.entities.get(name, plan.rows[name])
    per_chunk = FILES[name][2]
    manifest = []
    tmp = out_dir / (name + ".tmp")
    with open(tmp, "wb", buffering=0) as f:
        w = _BackgroundWriter(f)
        head = FILES[name][0].encode() + b"\n"
        if plan.dirty and name in BOM_FILES:
            head = BOM + head
            manifest.append((name, 1, "bom", ""))
        w.write(head)
        size, rows, line = len(head), 0, 2  # line: physical line of the next row
        ring = [None, None, None]  # the writer holds at most 2 buffers at a time
        for ci, a in enumerate(range(0, n_ent, per_chunk)):
            b = min(n_ent, a + per_chunk)
            rng = np.random.default_rng([plan.seed, FILE_NO[name], ci, int(plan.dirty)])
            chunk, dirt = build(g, rng, a, b)
            ring[ci % 3], view, _off, row_lines = chunk.render(ring[ci % 3])
            if dirt:
                first = line + np.cumsum(row_lines) - row_lines
                manifest += [(name, int(first[i]), kind, rid) for i, kind, rid in dirt]
            line += int(row_lines.sum())
            rows += chunk.n
            size += len(view)
            w.write(view)
            if progress:
                progress(name, rows, plan.rows[name])
        w.close()
    if rows != plan.rows[name]:
        raise AssertionError("%s: wrote %d rows, planned %d" % (name, rows, plan.rows[name]))
    return name, rows, size, manifest, time.monotonic() - t0


# worker-process globals, inherited through fork
_PLAN: Plan | None = None
_POOLS = None
_OUT: Path | None = None
_QUEUE = None


def _quiet_malloc():
    """Keep freed memory in the heap: large temporaries then reuse mapped pages
    instead of paying page faults on every chunk (glibc only; harmless elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)   # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)    # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def _worker_init(q):
    global _QUEUE
    _QUEUE = q
    _quiet_malloc()


def _worker_task(name: str):
    last = [0.0]

    def progress(n, rows, total):
        now = time.monotonic()
        if now - last[0] >= 0.5 or rows == total:
            last[0] = now
            _QUEUE.put((n, rows, total))

    return write_file(_PLAN, _POOLS, name, _OUT, progress)


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024
    return str(n)


def generate(out_dir, scale: float = 0.01, seed: int = 1, dirty: bool = False,
             jobs: int | None = None, log=sys.stderr):
    """Write the data set into out_dir; returns {file: (rows, bytes)}."""
    global _PLAN, _POOLS, _OUT
    t0 = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = max(1, jobs or os.cpu_count() or 1)

    def say(msg):
        if log:
            print("[%6.1fs] %s" % (time.monotonic() - t0, msg), file=log, flush=True)

    _PLAN = build_plan(scale, seed, dirty)
    _POOLS = build_pools(seed)
    _OUT = out_dir
    say("planned %s rows (scale %g, seed %d%s)" % (
        format(sum(_PLAN.rows.values()), ","), scale, seed, ", dirty" if dirty else ""))
    # biggest files first, so two workers finish at about the same time
    names = sorted(FILES, key=lambda n: -_PLAN.rows[n] * FILES[n][3])
    results = {}
    state: dict[str, tuple[int, int]] = {}
    last_line = [time.monotonic()]

    def done(res):
        name, rows, size, _m, secs = res
        results[name] = res
        state.pop(name, None)
        say("done %-27s %12s rows %10s in %5.1fs" % (name, format(rows, ","), _fmt_bytes(size), secs))

    def tick(force=False):
        if state and (force or time.monotonic() - last_line[0] >= 2):
            last_line[0] = time.monotonic()
            say("  ".join("%s %s/%s" % (n, format(r, ","), format(t, ","))
                          for n, (r, t) in sorted(state.items())))

    if jobs == 1:
        _quiet_malloc()

        def progress(n, rows, total):
            state[n] = (rows, total)
            tick()

        for name in names:
            done(write_file(_PLAN, _POOLS, name, out_dir, progress))
    else:
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        with ctx.Pool(min(jobs, len(names)), initializer=_worker_init, initargs=(q,)) as pool:
            it = pool.imap_unordered(_worker_task, names)
            pending = len(names)
            while pending:
                try:
                    res = it.next(timeout=0.2)
                except mp.TimeoutError:
                    res = None
                while True:
                    try:
                        n, rows, total = q.get_nowait()
                    except queue.Empty:
                        break
                    if n not in results:
                        state[n] = (rows, total)
                if res is not None:
                    done(res)
                    pending -= 1
                tick()

    for name in FILES:
        os.replace(out_dir / (name + ".tmp"), out_dir / name)
    manifest = sorted((m for name in FILES for m in results[name][3]),
                      key=lambda m: (FILE_NO[m[0]], m[1]))
    with open(out_dir / "manifest.csv", "w", newline="") as f:
        f.write("file,line,kind,id\n")
        f.writelines("%s,%d,%s,%s\n" % m for m in manifest)
    _PLAN = _POOLS = None
    total_rows = sum(results[n][1] for n in FILES)
    total_bytes = sum(results[n][2] for n in FILES)
    say("wrote %s rows, %s, %d manifest rows to %s" % (
        format(total_rows, ","), _fmt_bytes(total_bytes), len(manifest), out_dir))
    return {n: (results[n][1], results[n][2]) for n in FILES}


def print_summary(summary, out=sys.stdout):
    print("%-28s %12s %15s" % ("file", "rows", "bytes"), file=out)
    for name, (rows, size) in summary.items():
        print("%-28s %12s %15s" % (name, format(rows, ","), format(size, ",")), file=out)
    print("%-28s %12s %15s" % ("total", format(sum(r for r, _ in summary.values()), ","),
                               format(sum(s for _, s in summary.values()), ",")), file=out)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m atelier_etl.generate", description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=0.01, help="fraction of the full ~70M-row data set")
    ap.add_argument("--dirty", action="store_true", help="inject the dirt of data.md and write manifest.csv")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=".data/csv", help="output directory (default .data/csv)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    args = ap.parse_args(argv)
    if args.scale < 1e-5:
        ap.error("--scale must be at least 0.00001")
    if args.seed < 0:
        ap.error("--seed must be >= 0")
    summary = generate(args.out, args.scale, args.seed, args.dirty, args.jobs)
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
