"""Building blocks of the data generator (see ``generate.py``).

* :class:`Pool` – already-encoded CSV pieces (quoted text plus its trailing
  separator) that rows pick by index, so no per-row string formatting happens.
* :class:`ChunkBuilder` / :class:`Chunk` – assemble a chunk of CSV rows as
  numpy byte gathers: every field is a *piece* ``(start, length)`` in one source
  buffer (the file's pools followed by per-chunk integer digits), and the whole
  chunk is rendered with one ``cumsum`` + ``take``.
* :func:`build_pools` – the realistic texts, names, e-mails and URLs.
* :func:`iso_date` / :func:`js_date` – the two "dirty" date renderings.
"""
from __future__ import annotations

import datetime as _dt
import random
import unicodedata

import numpy as np

# 4-digit groups "0000".."9999" as little-endian uint32, so an integer column is
# rendered 4 digits per table lookup.
_LUT4 = np.frombuffer(b"".join(b"%04d" % i for i in range(10000)), dtype="<u4").copy()
_POW10 = [10**k for k in range(1, 19)]
_BLOCK = 1 << 18  # output bytes rendered per gather step


class Pool:
    """Encoded CSV pieces, each already ending with its separator (``,`` or ``\\n``)."""

    def __init__(self, items: list[bytes]):
        if not items:
            raise ValueError("empty pool")
        self.items = items
        self.blocks = None  # optional (start, size) sub-ranges, e.g. names per category
        self.len = np.fromiter(map(len, items), np.int64, len(items))
        self.off = np.zeros(len(items), np.int64)
        np.cumsum(self.len[:-1], out=self.off[1:])
        self.buf = np.frombuffer(b"".join(items), np.uint8)
        # line breaks inside quoted fields (not counting a row's terminator):
        # rows with them span several physical lines
        self.nl = np.fromiter((it.count(b"\n") - it.endswith(b"\n") for it in items), np.int64, len(items))
        self.multiline = bool(self.nl.any())

    def __len__(self) -> int:
        return len(self.items)

    def index(self, item: bytes) -> int:
        return self.items.index(item)


class ChunkBuilder:
    """Per-file state reused across chunks: the pools laid out in one buffer
    followed by a scratch area for per-chunk bytes, plus reusable index/out
    buffers (fresh large allocations cost page faults on every chunk)."""

    def __init__(self, pools: dict[str, Pool]):
        self.pools = pools
        self.base: dict[str, int] = {}
        pos = 0
        for name, pool in pools.items():
            self.base[name] = pos
            pos += len(pool.buf)
        self.static_size = (pos + 63) // 64 * 64
        self.src = np.zeros(self.static_size + (1 << 20), np.uint8)
        for name, pool in pools.items():
            self.src[self.base[name]:self.base[name] + len(pool.buf)] = pool.buf
        self.top = self.static_size
        self.idx = np.empty(0, np.int64)
        self.multiline = any(p.multiline for p in pools.values())

    def alloc(self, nbytes: int) -> int:
        """Reserve nbytes (4-aligned) of per-chunk source; returns the offset."""
        start = (self.top + 3) // 4 * 4
        end = start + nbytes
        if end > len(self.src):
            grown = np.empty(max(end, len(self.src) * 2), np.uint8)
            grown[:self.top] = self.src[:self.top]
            self.src = grown
        self.top = end
        return start

    def chunk(self, n: int) -> "Chunk":
        self.top = self.static_size
        return Chunk(self, n)


class Chunk:
    """n CSV rows under construction, one piece column per call, in field order."""

    def __init__(self, builder: ChunkBuilder, n: int):
        self.b = builder
        self.n = n
        self.starts: list[np.ndarray] = []
        self.lens: list[np.ndarray] = []
        self.nls: dict[int, np.ndarray] = {}  # column -> line breaks inside its fields
        self.replaced: list[tuple[int, int, bytes]] = []

    # -- columns -----------------------------------------------------------
    def pick(self, pool: str, idx) -> int:
        """A column of pool pieces chosen by idx (array, or one int for all rows)."""
        p = self.b.pools[pool]
        col = len(self.starts)
        if np.isscalar(idx):
            idx = np.full(self.n, idx, np.int64)
        self.starts.append(self.b.base[pool] + p.off[idx])
        self.lens.append(p.len[idx])
        if p.multiline:
            self.nls[col] = p.nl[idx]
        return col

    def ints(self, values: np.ndarray, suffix: bytes = b",", rows=None) -> int:
        """A column of non-negative integers followed by suffix. With rows, values
        holds distinct values and rows[i] says which one row i shows (formats
        each parent id once instead of once per child)."""
        starts, lens = self._format(np.asarray(values), suffix)
        if rows is not None:
            starts, lens = starts[rows], lens[rows]
        self.starts.append(starts)
        self.lens.append(lens)
        return len(self.starts) - 1

    def set_const(self, col: int, mask: np.ndarray, pool: str, item: int) -> None:
        """Rows where mask is true show pool[item] in column col (e.g. ``null,``)."""
        p = self.b.pools[pool]
        self.starts[col][mask] = self.b.base[pool] + p.off[item]
        self.lens[col][mask] = p.len[item]
        if col in self.nls:
            self.nls[col][mask] = p.nl[item]

    def replace(self, row: int, col: int, data: bytes) -> None:
        """Row `row` shows data in column col (b'' drops the field entirely)."""
        self.replaced.append((int(row), col, data))

    def piece(self, row: int, col: int) -> bytes:
        s, n = int(self.starts[col][row]), int(self.lens[col][row])
        return self.b.src[s:s + n].tobytes()

    def _format(self, v: np.ndarray, suffix: bytes):
        n = len(v)
        if n == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        if int(v.min()) < 0:
            raise ValueError("negative values are not supported")
        if len(suffix) > 4:
            raise ValueError("suffix too long")
        digits = len(str(int(v.max())))
        groups = (digits + 3) // 4
        width = 4 * groups + 4  # digits, then the suffix in its own 4-byte word
        start = self.b.alloc(n * width)
        words = self.b.src[start:start + n * width].view(np.uint32).reshape(n, groups + 1)
        q = v.astype(np.int64, copy=True)
        for g in range(groups):
            words[:, groups - 1 - g] = _LUT4[q % 10000]
            if g + 1 < groups:
                q //= 10000
        words[:, groups] = int.from_bytes(suffix.ljust(4, b"\0"), "little")
        nd = np.ones(n, np.int64)
        for p in _POW10[:digits - 1]:
            nd += v >= p
        first = start + 4 * groups
        starts = np.arange(first, first + n * width, width, dtype=np.int64) - nd
        return starts, nd + len(suffix)

    # -- output ------------------------------------------------------------
    def render(self, out: np.ndarray | None = None):
        """Render the rows. Returns (buffer, view, row_off, row_lines): the bytes
        are view = buffer[:total] (buffer is `out`, or a bigger replacement),
        row_off the byte offset of each row in them, row_lines the number of
        physical lines each row spans."""
        b = self.b
        k = len(self.starts)
        S = np.empty((self.n, k), np.int64)
        L = np.empty((self.n, k), np.int64)
        for j in range(k):
            S[:, j] = self.starts[j]
            L[:, j] = self.lens[j]
        row_lines = np.ones(self.n, np.int64)
        for nl in self.nls.values():
            row_lines += nl
        for row, col, data in self.replaced:
            at = b.alloc(len(data))
            b.src[at:at + len(data)] = np.frombuffer(data, np.uint8)
            old_nl = self.nls[col][row] if col in self.nls else 0
            row_lines[row] += data.count(b"\n") - data.endswith(b"\n") - old_nl
            S[row, col], L[row, col] = at, len(data)
        row_len = L.sum(axis=1)
        row_off = np.cumsum(row_len) - row_len
        S, L = S.ravel(), L.ravel()
        if self.replaced and (L == 0).any():
            keep = L > 0
            S, L = S[keep], L[keep]
        ends = np.cumsum(L)
        total = int(ends[-1]) if len(ends) else 0
        if out is None or len(out) < total:
            out = np.empty(int(total * 1.25) + 1024, np.uint8)
        view = out[:total]
        # index of every output byte in src: +1 inside a piece, a jump at each
        # piece's first byte; a cumsum turns the jumps into absolute positions.
        # Long pieces (text) go in blocks of ~256 KB output so the index array
        # stays in cache; for short pieces (numbers) blocking costs more than it saves.
        firsts = ends - L
        jumps = np.empty_like(S)
        if len(S):
            jumps[1:] = S[1:] - (S[:-1] + L[:-1] - 1)
        if total >= 16 * len(S):
            cuts = np.searchsorted(firsts, np.arange(0, total, _BLOCK), side="left")
            cuts = np.append(np.unique(cuts), len(S))
        else:
            cuts = np.array([0, len(S)])
        for p0, p1 in zip(cuts[:-1], cuts[1:]):
            if p0 == p1:
                continue
            o0, o1 = int(firsts[p0]), int(ends[p1 - 1])
            if o1 - o0 > len(b.idx):
                b.idx = np.empty(max(o1 - o0, _BLOCK * 2), np.int64)
            idx = b.idx[:o1 - o0]
            idx.fill(1)
            idx[firsts[p0:p1] - o0] = jumps[p0:p1]
            idx[0] = S[p0]
            np.cumsum(idx, out=idx)
            np.take(b.src, idx, out=view[o0:o1])
        return out, view, row_off, row_lines


# --------------------------------------------------------------------------
# dates
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def iso_date(ms: int) -> str:
    """JavaScript Date.toISOString(): 2021-01-17T03:01:59.883Z."""
    t = _EPOCH + _dt.timedelta(milliseconds=int(ms))
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (int(ms) % 1000)


def _us_eastern_dst(t: _dt.datetime) -> bool:
    """US Eastern daylight time (rules since 2007) for a UTC instant: from the
    second Sunday of March 07:00 UTC to the first Sunday of November 06:00 UTC."""
    y = t.year
    mar1 = _dt.datetime(y, 3, 1, tzinfo=_dt.timezone.utc)
    start = mar1 + _dt.timedelta(days=(6 - mar1.weekday()) % 7 + 7, hours=7)
    nov1 = _dt.datetime(y, 11, 1, tzinfo=_dt.timezone.utc)
    end = nov1 + _dt.timedelta(days=(6 - nov1.weekday()) % 7, hours=6)
    return start <= t < end


def js_date(ms: int) -> str:
    """JavaScript Date.toString() in US Eastern time, e.g.
    Wed Apr 21 2021 22:39:42 GMT-0400 (Eastern Daylight Time)."""
    t = _EPOCH + _dt.timedelta(milliseconds=int(ms))
    dst = _us_eastern_dst(t)
    local = t + _dt.timedelta(hours=-4 if dst else -5)
    return "%s %s %02d %04d %02d:%02d:%02d GMT%s (%s)" % (
        _DAYS[local.weekday()], _MONTHS[local.month - 1], local.day, local.year,
        local.hour, local.minute, local.second,
        "-0400" if dst else "-0500",
        "Eastern Daylight Time" if dst else "Eastern Standard Time")


# --------------------------------------------------------------------------
# texts
CATEGORIES = [  # (category, weight, is_shoe, nouns)
    ("Jackets", 10, False, ["Onesie", "Jacket", "Parka", "Windbreaker", "Bomber", "Blazer"]),
    ("Pants", 10, False, ["Slacks", "Joggers", "Chinos", "Jeans", "Trousers", "Cargos"]),
    ("Shirts", 9, False, ["Shirt", "Tee", "Polo", "Button Down", "Henley"]),
    ("Tops", 7, False, ["Tank", "Crop Top", "Blouse", "Camisole"]),
    ("Shorts", 6, False, ["Shorts", "Trunks", "Board Shorts"]),
    ("Sweatpants", 5, False, ["Sweatpants", "Lounge Pants", "Track Pants"]),
    ("Accessories", 8, False, ["Sunglasses", "Scarf", "Belt", "Beanie", "Backpack", "Watch"]),
    ("Hats", 4, False, ["Cap", "Bucket Hat", "Fedora", "Snapback"]),
    ("Dresses", 5, False, ["Dress", "Sundress", "Maxi", "Gown"]),
    ("Kicks", 12, True, ["Kicks", "Ones", "Sneakers", "Runners", "Trainers", "High Tops"]),
    ("Dress Shoes", 6, True, ["Oxfords", "Loafers", "Brogues", "Derbies"]),
    ("Heels", 4, True, ["Heels", "Pumps", "Stilettos", "Wedges"]),
    ("Boots", 6, True, ["Boots", "Chelsea Boots", "Hikers", "Chukkas"]),
    ("Sandals", 3, True, ["Sandals", "Slides", "Flip Flops", "Espadrilles"]),
]
CLOTHING_SIZES = ["XS", "S", "M", "L", "XL", "XXL"]
SHOE_SIZES = ["7", "7.5", "8", "8.5", "9", "9.5", "10", "10.5", "11", "11.5", "12", "12.5", "13"]
CHAR_NAMES = ["Fit", "Length", "Comfort", "Quality", "Size", "Width"]
CLOTHING_CHAR_ORDER = [0, 1, 2, 3, 4, 5]
SHOE_CHAR_ORDER = [4, 5, 2, 3, 0, 1]

_ADJ = ["Camo", "Bright Future", "Morning", "Slacker's", "Heir Force", "Pumped Up", "Blues Suede",
        "YEasy", "Summer", "Winter", "Classic", "Retro", "Urban", "Alpine", "Coastal", "Midnight",
        "Golden Hour", "Desert", "Forest", "Ocean", "Velvet", "Electric", "Vintage", "Nomad", "Cozy",
        "Trail", "Metro", "Sunset", "Arctic", "Café", "Über", "Zen", "Wild", "Quiet", "Bold", "Lazy Sunday",
        "Infinity", "Cloud", "Thunder", "Moonlight", "Harbor", "Canyon", "Prairie", "Skyline", "Neon"]
_COLORS = ["Forest Green", "Black", "Desert Brown", "Tan", "Ocean Blue", "Grey", "White", "Red",
           "Navy", "Olive", "Mustard", "Maroon", "Cream", "Charcoal", "Sky Blue", "Pink", "Purple",
           "Coral", "Teal", "Khaki", "Burgundy", "Ivory", "Lavender", "Mint", "Peach", "Rust",
           "Sand", "Slate", "Crème Brûlée", "Goldenrod", "Dark Grey", "Light Blue", "Orange", "Yellow"]
_WORDS = ["soft", "durable", "light", "warm", "breathable", "sturdy", "stylish", "comfy", "roomy",
          "snug", "classic", "modern", "bold", "subtle", "versatile", "crisp", "relaxed", "sleek"]
_NOUNS = ["fabric", "stitching", "fit", "color", "material", "sole", "zipper", "lining", "waistband",
          "collar", "pocket", "hood", "strap", "cut", "print", "laces", "heel", "seam"]
_PLACES = ["the office", "the gym", "a wedding", "the beach", "the trail", "a concert", "brunch",
           "the airport", "a first date", "the grocery store", "the park", "Zürich", "São Paulo",
           "the café", "a road trip"]
_EXTRAS = ["😀", "👍", "🔥", "❤️", "✨", "naïve", "jalapeño", "über", "déjà vu", "façade", "Müller", "piñata"]
_FIRST = ["James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
          "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
          "Charles", "Karen", "Chris", "Nancy", "Daniel", "Lisa", "Matthew", "Betty", "Anthony", "Sandra",
          "Mark", "Ashley", "José", "Zoë", "Renée", "Björn", "Chloé", "Jürgen", "Ana", "Luis", "Mei",
          "Hiro", "Priya", "Omar", "Fatima", "Kofi", "Ingrid", "Mateo", "Sofia", "Liam", "Noah", "Emma"]
_LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
         "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
         "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
         "Clark", "Ramirez", "Lewis", "Robinson", "Müller", "Núñez", "O'Brien", "Schulman", "Bilas",
         "Kowalski", "Nguyen", "Kim", "Patel", "Rossi", "Dubois", "Larsen", "Okafor", "Tanaka"]
_HANDLES = ["yankeelover", "sillyguy", "funtime", "jbilas", "dschulman", "coolkid", "sneakerhead",
            "thegreatestone", "mymainstreammother", "shopaholic", "bargainhunter", "trailrunner",
            "couchpotato", "nightowl", "earlybird", "fashionista", "justbrowsing", "dadjokes",
            "catmom", "dogdad", "zoë_runs", "josé88", "müllerfan", "happycamper", "stylewatcher"]
_DOMAINS = ["gmail.com"] * 6 + ["yahoo.com", "hotmail.com", "outlook.com", "icloud.com"]


def csv_quote(text: str) -> bytes:
    return b'"' + text.replace('"', '""').encode("utf-8") + b'"'


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().replace("'", "")


def _sprinkle(r: random.Random, text: str, newline_rate: float) -> str:
    """Occasionally add what real user text has: a line break, a "quoted"
    word, non-ASCII characters or an emoji."""
    x = r.random()
    if x < newline_rate:
        cut = max(text.find(". "), text.find("? "))
        brk = "\n\n" if r.random() < 0.5 else "\n"
        if cut > 0:
            text = text[:cut + 1] + brk + text[cut + 2:]
        else:
            text = text + brk + r.choice(["Thanks!", "Cheers,\nSam", "PS: love the color."])
    elif x < newline_rate + 0.04:
        w = r.choice(_WORDS)
        text = text.replace(w, '"%s"' % w, 1) if w in text else text + ' Totally "%s".' % w
    elif x < newline_rate + 0.08:
        text = text + " " + r.choice(_EXTRAS)
    return text


def _sentence(r: random.Random) -> str:
    t = r.randrange(8)
    w, w2, n, p = r.choice(_WORDS), r.choice(_WORDS), r.choice(_NOUNS), r.choice(_PLACES)
    if t == 0:
        return "The %s is %s and %s." % (n, w, w2)
    if t == 1:
        return "I wore it to %s, and it held up great." % p
    if t == 2:
        return "Honestly, the %s could be more %s." % (n, w)
    if t == 3:
        return "Perfect for %s, %s enough for %s." % (p, w, r.choice(_PLACES))
    if t == 4:
        return "I really did or did not like this product based on whether it was sustainably sourced."
    if t == 5:
        return "After %d washes the %s still looks %s." % (r.randrange(2, 40), n, w)
    if t == 6:
        return "My %s loves it; I'm buying another one in %s." % (
            r.choice(["wife", "husband", "son", "daughter", "partner", "roommate"]), r.choice(_COLORS).lower())
    return "It runs %s, so size %s." % (r.choice(["small", "large", "true to size"]), r.choice(["up", "down"]))


def _pitch(r: random.Random) -> str:
    """A sentence of product copy."""
    t = r.randrange(7)
    w, w2, n, p = r.choice(_WORDS), r.choice(_WORDS), r.choice(_NOUNS), r.choice(_PLACES)
    if t == 0:
        return "The %s %s will wake you up and fit you in." % (r.choice(_ADJ), r.choice(CATEGORIES)[3][0])
    if t == 1:
        return "This high energy %s will have you blending in to even the wildest surroundings." % (
            r.choice(_COLORS).lower())
    if t == 2:
        return "Whether you're heading to %s or %s, it has you covered." % (p, r.choice(_PLACES))
    if t == 3:
        return "A %s take on a classic, with a %s %s." % (w, w2, n)
    if t == 4:
        return "%s %s, %s attitude." % (w.capitalize(), n, w2)
    if t == 5:
        return "Made from %s, it's built for %s and everything in between." % (
            r.choice(["organic cotton", "recycled nylon", "full-grain leather", "merino wool", "canvas"]), p)
    return "Designed in %s, made to last." % r.choice(["Zürich", "Portland", "Kraków", "Montréal", "Osaka"])


def _paragraph(r: random.Random, lo: int, hi: int, sentence=_sentence) -> str:
    target = r.randint(lo, hi)
    out = sentence(r)
    while len(out) < target:
        out += " " + sentence(r)
    return out


def _unsplash(r: random.Random) -> str:
    return "https://images.unsplash.com/photo-%d-%012x" % (
        r.randrange(1_440_000_000_000, 1_600_000_000_000), r.getrandbits(48))


_URL_TAIL = "?ixlib=rb-1.2.1&ixid=eyJhcHBfaWQiOjEyMDd9&auto=format&fit=crop&w=%d&q=80"


def build_pools(seed: int) -> dict[str, Pool]:
    """All text pools, deterministic in seed. Entries are CSV-encoded with the
    separator that follows them in their file."""
    r = random.Random(seed * 1_000_003 + 17)
    P: dict[str, list[bytes]] = {}

    # product names grouped per category (rows pick inside their category's block)
    names, name_block = [], []
    for _cat, _w, _shoe, nouns in CATEGORIES:
        block = sorted({"%s %s" % (a, nn) for a in _ADJ for nn in nouns})
        name_block.append((len(names), len(block)))
        names += [csv_quote(x) + b"," for x in block]
    P["pname"] = names
    P["category"] = [csv_quote(c[0]) + b"," for c in CATEGORIES]
    slogans = []
    for _ in range(3000):
        s = r.choice(["Blend in to your crowd", "Look good, feel good", "You've got to wear shades",
                      "Made for %s" % r.choice(_PLACES), "So %s, so %s" % (r.choice(_WORDS), r.choice(_WORDS)),
                      "The %s you deserve" % r.choice(_NOUNS), "Whip it real good",
                      "Comfort is a state of mind", "Walk this way", "Où est la plage?"])
        slogans.append(csv_quote(_sprinkle(r, s, 0.01)) + b",")
    P["slogan"] = slogans
    # descriptions and review/answer bodies are two pieces (opening quote +
    # first half, second half + closing quote) so 2,000 x 2,000 combinations
    P["desc_a"] = [b'"' + csv_quote(_sprinkle(r, _paragraph(r, 40, 170, _pitch), 0.02))[1:-1]
                   for _ in range(2000)]
    P["desc_b"] = [csv_quote(" " + _sprinkle(r, _paragraph(r, 30, 170, _pitch), 0.02))[1:] + b","
                   for _ in range(2000)]

    feats = {"Fabric": ["Canvas", "100% Cotton", "Denim", "Wool", "Silk", "Cashmere", "Linen"],
             "Buttons": ["Brass", "Wooden", "Plastic", "Silver"], "Lenses": ["Ultrasheen", "Polarized"],
             "UV Protection": [None], "Frame": ["AllLight Composition Resin", "DuraResin"],
             "Sole": ["Rubber", "FullControlSkin", "Gum, natural"], "Material": ["Leather", "Suede", "Vegan leather"],
             "Mid-Sole": ["ControlSupport Arch Bridge", "Foam"], "Stitching": ["Double Stitch", "Cross Stitch"],
             "Cut": ["Loose", "Skinny", "Straight", 'The "Original" cut'], "Green Leaf Certified": [None],
             "Non-GMO": [None], "Satisfaction Guaranteed": [None], "Lifetime Guarantee": [None],
             "Fair Trade Certified": [None], "Made in": ["Portugal", "Perú", "Türkiye", "Vietnam"]}
    P["feature"] = [csv_quote(f) + b"," + (b"null" if v is None else csv_quote(v)) + b"\n"
                    for f, vals in feats.items() for v in vals]
    styles = [csv_quote(c) + b"," for c in _COLORS]
    styles += [csv_quote("%s & %s" % (a, b)) + b"," for a in _COLORS for b in _COLORS if a != b]
    P["style"] = styles

    # photos: "url","thumb"\n ; then the unclosed-quote and missing-thumbnail variants
    pairs = []
    for _ in range(3000):
        u = _unsplash(r)
        t = u if r.random() < 0.8 else _unsplash(r)
        pairs.append((u + _URL_TAIL % r.choice([668, 675, 700, 750, 800, 1000, 1050]), t + _URL_TAIL % 300))
    P["photo"] = ([csv_quote(u) + b"," + csv_quote(t) + b"\n" for u, t in pairs]
                  + [csv_quote(u) + b"," + csv_quote(t)[:-1] + b"\n" for u, t in pairs]
                  + [csv_quote(u) + b"\n" for u, t in pairs])
    P["aphoto"] = [csv_quote(_unsplash(r) + _URL_TAIL % r.choice([1651, 1350, 975, 1500, 634])) + b"\n"
                   for _ in range(3000)]
    P["rphoto"] = [csv_quote(_unsplash(r) + _URL_TAIL % r.choice([975, 1650, 668, 1334, 800])) + b"\n"
                   for _ in range(3000)]
    P["size"] = [csv_quote(s) + b"," for s in CLOTHING_SIZES + SHOE_SIZES]

    people = []
    for _ in range(6000):
        first, last = r.choice(_FIRST), r.choice(_LAST)
        x = r.random()
        if x < 0.4:
            handle = r.choice(_HANDLES) + (str(r.randrange(100)) if r.random() < 0.5 else "")
        elif x < 0.8:
            handle = (first[0] + last).lower().replace("'", "")
        else:
            handle = "%s %s." % (first, last[0])
        email = "%s.%s%s@%s" % (_ascii(first).lower(), _ascii(last).lower(),
                                str(r.randrange(100)) if r.random() < 0.3 else "", r.choice(_DOMAINS))
        people.append(csv_quote(handle) + b"," + csv_quote(email) + b",")
    P["person"] = people

    qs = []
    for _ in range(4000):
        t = r.randrange(7)
        if t == 0:
            q = "What fabric is the %s made of?" % r.choice(["top", "bottom", "lining", "sole", "strap"])
        elif t == 1:
            q = "Does this run true to size?"
        elif t == 2:
            q = "Is it machine washable, or dry clean only?"
        elif t == 3:
            q = "Would you wear this to %s?" % r.choice(_PLACES)
        elif t == 4:
            q = "How does the %s hold up after a few months?" % r.choice(_NOUNS)
        elif t == 5:
            q = "Is the %s %s enough for %s?" % (r.choice(_NOUNS), r.choice(_WORDS), r.choice(_PLACES))
        else:
            q = 'Is the "%s" color closer to %s or %s?' % (r.choice(_COLORS), r.choice(_COLORS), r.choice(_COLORS))
        qs.append(csv_quote(_sprinkle(r, q + (" " + _sentence(r) if r.random() < 0.3 else ""), 0.02)) + b",")
    P["qbody"] = qs
    P["abody_a"] = [b'"' + csv_quote(_sprinkle(r, r.choice(
        ["Supposedly suede, but I think its synthetic.", "Yes.", "No, not really.", "I think so.",
         "Runs a little small.", "Something pretty soft but I can't be sure.", "It's the best!",
         "Mine shrank a bit.", "Only dry clean.", "Depends on the color."]), 0.03))[1:-1] for _ in range(1500)]
    P["abody_b"] = [csv_quote(("" if r.random() < 0.3 else " " + _paragraph(r, 10, 90)))[1:] + b","
                    for _ in range(1500)]
    P["flag01"] = [b"0,", b"1,"]

    P["rating"] = [b"%d," % i for i in range(1, 6)]
    summaries = []
    for _ in range(3000):
        s = r.choice(["This product was great!", "This product was ok!", "I love it", "Not for me",
                      "Runs small, size up", "Best purchase this year", "Meh.", "Would buy again",
                      "Great value, fast shipping", "Disappointed", "Très chic", "Comfy 😀",
                      "Pretty good, but not \"perfect\"", "Fits like a glove"])
        summaries.append(csv_quote(s) + b",")
    P["summary"] = summaries
    P["rbody_a"] = [b'"' + csv_quote(_sprinkle(r, _paragraph(r, 20, 200), 0.03))[1:-1] for _ in range(2000)]
    P["rbody_b"] = [csv_quote(" " + _sprinkle(r, _paragraph(r, 10, 190), 0.03))[1:] + b","
                    for _ in range(2000)]
    P["recrep"] = [b"true,false,", b"false,false,", b"true,true,", b"false,true,"]
    P["response"] = [b"null,"] + [csv_quote(r.choice(
        ["Thank you for your feedback!", "We're sorry to hear that, please contact support.",
         "Glad you like it!", "Thanks — we've passed this on to our design team.",
         "Sorry about the sizing, see our size chart.\nWe're happy to exchange it."])) + b","
        for _ in range(20)]
    P["charname"] = [csv_quote(c) + b"\n" for c in CHAR_NAMES] + [b"null\n"]
    P["digit_nl"] = [b"%d\n" % i for i in range(10)]
    P["digit_c"] = [b"%d," % i for i in range(10)]
    P["null_c"] = [b"null,"]

    pools = {k: Pool(v) for k, v in P.items()}
    pools["pname"].blocks = np.array(name_block, np.int64)
    return pools
