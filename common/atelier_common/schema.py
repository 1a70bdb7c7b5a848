"""Creating a service's schema from the `.sql` files in its package.

`sql/schema.sql` holds the tables; `sql/indexes.sql` the keys and indexes, kept apart so that a
bulk load can create the tables, COPY into them, and only then build the indexes."""
import re
from importlib import resources

import click
import psycopg2

SCHEMA_FILES = ("schema.sql", "indexes.sql")


def schema_sql(package: str, name: str) -> str:
    return resources.files(package).joinpath("sql", name).read_text()


def apply_schema(dsn: str, package: str):
    """Drop and create the service's tables (an empty database ready to serve)."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for name in SCHEMA_FILES:
            cur.execute(schema_sql(package, name))
    conn.close()


def add_missing_tables(dsn: str, package: str) -> list:
    """Create the tables of sql/schema.sql that a database made by an earlier release lacks
    (with their indexes from the same file), leaving every other table as it is: how a table
    that is not bulk-loaded (idempotency_key) reaches an existing database. Returns their names."""
    statements = [part.strip() for part in re.split(r";\s*\n", schema_sql(package, "schema.sql"))]
    creates = {}
    for statement in statements:
        body = "\n".join(line for line in statement.splitlines() if not line.lstrip().startswith("--"))
        match = re.match(r"CREATE TABLE (\w+)", body.strip())
        if match:
            creates[match[1]] = [body]
    for statement in statements:
        body = "\n".join(line for line in statement.splitlines() if not line.lstrip().startswith("--"))
        match = re.match(r"CREATE INDEX \w+ ON (\w+)", body.strip())
        if match and match[1] in creates:
            creates[match[1]].append(body)
    added = []
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for table, ddl in creates.items():
            cur.execute("SELECT to_regclass(%s) IS NULL", (table,))
            if cur.fetchone()[0]:
                for statement in ddl:
                    cur.execute(statement)
                added.append(table)
    conn.close()
    return added


def has_tables(dsn: str) -> bool:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
        count = cur.fetchone()[0]
    conn.close()
    return count > 0


def register_cli(app, package: str):
    @app.cli.command("init-db")
    def init_db():
        """Create the service's tables, dropping any that exist (as the database's owner)."""
        from .localpg import owner_database_url

        apply_schema(owner_database_url(package), package)
        click.echo(f"{package}: schema created")
