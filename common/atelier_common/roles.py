"""Least privilege: each service's database has two roles.

- the owner (`<service>_owner`) owns the database, its schemas and tables: the loader and schema
  changes connect with it (`<SERVICE>_OWNER_DATABASE_URL`);
- the runtime role (`<service>`, the URL the service itself connects with) may only connect to
  that one database, read and write the rows of its tables (SELECT/INSERT/UPDATE/DELETE) and
  draw from its sequences (USAGE). It creates, alters, drops and truncates nothing, makes no
  temporary tables, and is no superuser.

The grants go through `ALTER DEFAULT PRIVILEGES FOR ROLE <owner>`, so tables, sequences and
whole schemas that the loader creates later (a new schema built beside the live one and swapped
in, say) are usable by the runtime role the moment they exist, with no grant step to forget.

`grant_runtime_privileges` runs as the owner (on RDS, say) or as a superuser (`make up`, the
tests); running it again changes nothing.
"""
from psycopg2 import sql

DML = "SELECT, INSERT, UPDATE, DELETE"


def owner_role(service_role: str) -> str:
    return f"{service_role}_owner"


def runtime_grants(database: str, owner: str, runtime: str, schemas) -> list:
    """The statements, in order; identifiers quoted by psycopg2, never formatted in."""
    db, own, run = sql.Identifier(database), sql.Identifier(owner), sql.Identifier(runtime)
    statements = [
        # Only the two roles may connect; nobody else gets TEMP either.
        sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, run),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"),
        sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT USAGE ON SCHEMAS TO {}").format(own, run),
        sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT " + DML + " ON TABLES TO {}").format(own, run),
        sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT USAGE ON SEQUENCES TO {}").format(own, run),
    ]
    for schema in schemas:  # what exists already
        name = sql.Identifier(schema)
        statements += [
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(name, run),
            sql.SQL("GRANT " + DML + " ON ALL TABLES IN SCHEMA {} TO {}").format(name, run),
            sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA {} TO {}").format(name, run),
        ]
    return statements


def grant_runtime_privileges(conn, owner: str, runtime: str):
    """Give `runtime` DML on everything `owner` has and will have in the connected database."""
    with conn.cursor() as cur:
        cur.execute("SELECT current_database()")
        database = cur.fetchone()[0]
        cur.execute("""SELECT nspname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
                       WHERE r.rolname = %s OR nspname = 'public' ORDER BY nspname""", (owner,))
        schemas = [row[0] for row in cur.fetchall()]
        for statement in runtime_grants(database, owner, runtime, schemas):
            cur.execute(statement)
    conn.commit()
