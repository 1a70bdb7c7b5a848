"""The load task's last step on RDS: give the service's runtime role its password (from Secrets
Manager) and its grants, connected as the owner (the RDS master user, which may create roles).

    <SERVICE>_OWNER_DATABASE_URL=... RUNTIME_PASSWORD=... python infra/terraform/runtime_role.py <service>

The grants are the project's least-privilege split (common/atelier_common/roles.py). First it
creates any table of the release's schema.sql that the database lacks (a table that is not
bulk-loaded, such as idempotency_key, reaching a database loaded by an earlier release). Running it
again sets the current password (rotation) and changes nothing else.
"""
import base64
import hashlib
import hmac
import importlib.util
import os
import sys
from contextlib import closing

import psycopg2
from psycopg2 import sql

from atelier_common.roles import grant_runtime_privileges, owner_role
from atelier_common.schema import add_missing_tables


SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)


def scram_verifier(password: str, salt: bytes = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL would store for this password (RFC 5802/7677), made
    here so that the password itself never reaches the server: the statement that sets it is
    logged (log_statement = ddl), and the log is exported to CloudWatch. PostgreSQL stores a
    verifier given as the password as it is. (SASLprep is the identity on the ASCII passwords
    generated for this role.)"""
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def ensure_login_role(conn, role: str, password: str):
    """Create the role (a login with no other power: CREATE ROLE's defaults), or set its password
    (as its SCRAM verifier: the password never leaves this process). An owner that is not a
    superuser (the RDS master user) may not even restate NOSUPERUSER on ALTER, so a rerun changes
    the password only."""
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        verb = "ALTER ROLE {} WITH" if cur.fetchone() else "CREATE ROLE {} WITH LOGIN"
        cur.execute(sql.SQL(verb + " PASSWORD %s").format(sql.Identifier(role)), (scram_verifier(password),))
    conn.commit()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    service = argv[0]
    url_variable = f"{service.upper()}_OWNER_DATABASE_URL"
    url, password = os.environ.get(url_variable), os.environ.get("RUNTIME_PASSWORD")
    if not url or not password:
        print(f"runtime_role: set {url_variable} and RUNTIME_PASSWORD", file=sys.stderr)
        return 2
    if importlib.util.find_spec(service) is not None:  # the service's package (its sql/schema.sql)
        for table in add_missing_tables(url, service):
            print(f"runtime_role: {service}: created the missing table {table}")
    with closing(psycopg2.connect(url)) as conn:
        ensure_login_role(conn, service, password)
        grant_runtime_privileges(conn, owner_role(service), service)
    print(f"runtime_role: {service} may log in and use the tables of {owner_role(service)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
