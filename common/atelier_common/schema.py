"""Creating a service's schema from the `.sql` files in its package.

`sql/schema.sql` holds the tables; `sql/indexes.sql` the keys and indexes, kept apart so that a
bulk load can create the tables, COPY into them, and only then build the indexes."""
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
