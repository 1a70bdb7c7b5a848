"""`Idempotency-Key` on POST (the IETF httpapi draft "The Idempotency-Key HTTP Header Field",
as Stripe and others use it): optional; a client that may have to retry a POST whose answer it
never got (a dropped connection, a 502/504) sends a unique key with it.

- The first request with a key writes and remembers, in the same statement or transaction as the
  write, the key, a fingerprint of the request (SHA-256 of method, path and body) and what its
  answer needs (the new row's Location; the product/question whose views it changed, for the
  balancer's X-Invalidates, which a lost answer never delivered).
- A repeat with the same key and the same request within 24 hours writes nothing and gets the
  first answer again (201 `Created`, the same Location), marked `Idempotent-Replayed: true`.
- The same key with another request (method, path or body) is 422.
- Concurrent duplicates: the claim is a unique key (`ON CONFLICT … DO UPDATE … WHERE expired`),
  so the second waits for the first's commit, then finds the key taken and answers the first's
  answer: exactly one write.
- Only successful writes are remembered: a request that was refused (422, 404) wrote nothing,
  and its retry is judged afresh.
- Keys older than 24 h are reusable and are deleted by the keyed writes themselves, a few at a
  time (`PURGE_EXPIRED`, at most 8 per keyed write, the oldest first): the table holds about a
  day of keyed writes.
- The table (`idempotency_key`) is in each writing service's own database (its sql/schema.sql).

The balancer resends a keyed POST to the next instance when the first failed even after
sending it (infra/nginx/conf/routes.conf): the key makes that safe.
"""
import hashlib
import os
import re
import signal

from flask import request

from .db import Statement
from .errors import APIError, invalid
from .http import changed, created

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
# An sf-string of the draft ("…" quoted) or the same characters bare: printable ASCII.
_KEY = re.compile(r'[\x21\x23-\x5b\x5d-\x7e]{1,255}')

# The answer of a live key (kept 24 hours): fingerprint, location, product_id, question_id.
LOOKUP = Statement("idempotency_lookup", """
SELECT fingerprint, location, product_id, question_id FROM idempotency_key
 WHERE key = $1::text AND created_at > now() - interval '24 hours'
""")

# A CTE for keyed writes: deletes a few expired keys (never the one being written), oldest first.
PURGE_EXPIRED = """purged AS (
    DELETE FROM idempotency_key WHERE key IN (
        SELECT key FROM idempotency_key
         WHERE created_at <= now() - interval '24 hours' AND key <> $KEY::text
         ORDER BY created_at LIMIT 8 FOR UPDATE SKIP LOCKED)
)"""

# The claim of a key, as a CTE over a one-row `reply (location, product_id, question_id)`:
# a new key, or one expired, is taken (one row returned); a live one is not (no row), and a
# concurrent claim waits for the other transaction to end first.
CLAIM = """claim AS (
    INSERT INTO idempotency_key AS k (key, fingerprint, location, product_id, question_id)
    SELECT $KEY::text, $FINGERPRINT::bytea, reply.location, reply.product_id, reply.question_id FROM reply
    ON CONFLICT (key) DO UPDATE
       SET fingerprint = excluded.fingerprint, location = excluded.location,
           product_id = excluded.product_id, question_id = excluded.question_id, created_at = now()
     WHERE k.created_at <= now() - interval '24 hours'
    RETURNING key
)"""


def keyed(sql: str, key_param: int, fingerprint_param: int) -> str:
    """The CTE texts above with their parameters numbered as in the statement using them."""
    return sql.replace("$KEY", f"${key_param}").replace("$FINGERPRINT", f"${fingerprint_param}")


def request_key():
    """The request's Idempotency-Key, or None; 422 when it is not a usable key."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1]
    if not _KEY.fullmatch(raw):
        raise invalid(HEADER, "Must be 1 to 255 printable ASCII characters (a UUID, say).")
    return raw


def fingerprint() -> bytes:
    """What makes a repeat the same request: method, path, body (bytes as sent)."""
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    digest.update(request.get_data(cache=True))
    return digest.digest()


def replay(row, request_fingerprint: bytes):
    """The first answer of a key (a LOOKUP row); 422 when the key came with another request."""
    if row is None:  # the key expired between two statements, or its holder is still undecided
        raise APIError(409, "A request with this Idempotency-Key is in progress, retry later.")
    stored, location, product_id, question_id = row
    if bytes(stored) != request_fingerprint:
        raise APIError(422, "The request has invalid parameters.",
                       {HEADER: ["This key was used with another request."]})
    response = created(location, changed(product_id, question_id))
    response.headers[REPLAYED] = "true"
    return response


def fault_after_commit():
    """Tests only (tests/chaos): with FAULT_DIE_AFTER_COMMIT=<file> set and that file present,
    the worker removes the file and dies (SIGKILL) after a write committed, before answering:
    the lost answer the key exists for."""
    marker = os.environ.get("FAULT_DIE_AFTER_COMMIT")
    if marker:
        try:
            os.remove(marker)
        except FileNotFoundError:
            return
        os.kill(os.getpid(), signal.SIGKILL)
