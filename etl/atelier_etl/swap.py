"""Load into a new schema, then swap it in: the services read the old data until the load commits,
and a load that dies at any point (SIGKILL included) leaves the old data as it was.

A service's loader runs in one transaction:

    open_load_schema(cur)   serialise loads; schema `atelier_load`, first on the search path
    … schema.sql, COPY, indexes.sql, ANALYZE: all into atelier_load …
    swap_in(cur, target)    grant the runtime role; rename `target` (public) to atelier_old and
                            atelier_load to `target`
                            and publish `flush` to the balancers' cache listeners
    COMMIT                  the new tables appear at once, under the names the services use,
                            and every balancer forgets what it cached
    drop_old(conn)          drop atelier_old in a transaction of its own (see below)

Why renaming schemas works under running services: their statements name tables without a
schema, and a schema rename makes PostgreSQL re-plan every cached plan (prepared statements
included), which then finds the new tables. The old schema is dropped in a separate,
short transaction after the swap, not in the load's: DROP takes exclusive locks on the old
tables, and held through the load's COMMIT (which writes out every new table) they would stall
requests for seconds. A leftover atelier_old (the process died between the two) is dropped by
the next load.

A dead loader's transaction: `client_connection_check_interval` makes its backend notice the
lost client within seconds, even in the middle of an index build, and roll back; the next load
waits for that on the advisory lock.
"""
from atelier_common.cache_listener import FLUSH_SQL

LOAD_SCHEMA = "atelier_load"
OLD_SCHEMA = "atelier_old"
_LOCK_KEY = "atelier_etl load"


def open_load_schema(cursor) -> str:
    """Start a load in `cursor`'s transaction; returns the schema the load will replace."""
    cursor.execute("SET LOCAL client_connection_check_interval = '2s'")
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK_KEY,))
    cursor.execute("SELECT coalesce(current_schema(), 'public')")
    target = cursor.fetchone()[0]
    cursor.execute(f"DROP SCHEMA IF EXISTS {OLD_SCHEMA} CASCADE")
    cursor.execute(f"DROP SCHEMA IF EXISTS {LOAD_SCHEMA} CASCADE")
    cursor.execute(f"CREATE SCHEMA {LOAD_SCHEMA}")
    cursor.execute(f"SET LOCAL search_path = {LOAD_SCHEMA}")
    return target


def swap_in(cursor, target: str, runtime_role: str = None):
    """Put the loaded schema in `target`'s place (same transaction as the load).

    `runtime_role`, when the services connect as a role other than the loader's, gets what it
    needs on the new objects before they become visible: USAGE on the schema, SELECT, INSERT,
    UPDATE, DELETE on the tables, USAGE on the sequences (default privileges, when set, have
    granted these already; granting again changes nothing)."""
    cursor.execute("SELECT current_user")
    if runtime_role and runtime_role != cursor.fetchone()[0]:
        role = _quote_ident(cursor, runtime_role)
        cursor.execute(f"GRANT USAGE ON SCHEMA {LOAD_SCHEMA} TO {role}")
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {LOAD_SCHEMA} TO {role}")
        cursor.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {LOAD_SCHEMA} TO {role}")
    cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (target,))
    if cursor.fetchone():
        cursor.execute(f"ALTER SCHEMA {_quote_ident(cursor, target)} RENAME TO {OLD_SCHEMA}")
    cursor.execute(f"ALTER SCHEMA {LOAD_SCHEMA} RENAME TO {_quote_ident(cursor, target)}")
    cursor.execute(f"SET LOCAL search_path = {_quote_ident(cursor, target)}")
    # Delivered on COMMIT to every balancer's cache listener: each forgets what it cached.
    cursor.execute(FLUSH_SQL)


def drop_old(conn):
    """Drop the replaced schema (after the load committed), in a transaction of its own."""
    with conn.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {OLD_SCHEMA} CASCADE")
    conn.commit()


def _quote_ident(cursor, name: str) -> str:
    cursor.execute("SELECT quote_ident(%s)", (name,))
    return cursor.fetchone()[0]
