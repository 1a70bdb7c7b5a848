"""Settings from the environment: every value has a safe local default except the database URL,
which must be given (`make up` provides the local one), so a misconfigured deployment fails at boot."""
import os
from dataclasses import dataclass, replace


class ConfigError(RuntimeError):
    """A required setting is missing or unreadable."""


@dataclass(frozen=True)
class Settings:
    service: str
    database_url: str
    pool_max: int = 10              # connections per worker
    pool_wait_seconds: float = 2.0  # how long a request waits for a free connection before 503
    statement_timeout_ms: int = 5000
    connect_timeout_seconds: float = 2.0  # opening a connection; longer answers 503
    max_page_count: int = 1000      # the contract's clamp for `count`
    cors_allow_origin: str = "*"
    retry_after_seconds: int = 1
    max_body_bytes: int = 65536     # a POST body is a few KB; anything larger answers 413
    # Peers whose X-Forwarded-For names the client (the balancer): comma-separated addresses or
    # networks. From anyone else the header is ignored, so a client cannot pose as another.
    trusted_proxies: str = "127.0.0.1"
    metrics_enabled: bool = True      # METRICS=0: no /metrics, no per-request counting
    metrics_flush_seconds: float = 1.0  # how often a worker adds its counts to the shared files
    # host:port of a second listener that alone serves /metrics (the public one answers 404 there);
    # empty: /metrics on the one listener (a lone development server).
    metrics_listen: str = ""


def _number(environ, name, default, kind):
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive")
    return value


def _switch(environ, name, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    if raw not in ("0", "1"):
        raise ConfigError(f"{name}={raw!r} must be 0 or 1")
    return raw == "1"


def database_url_variable(service: str) -> str:
    return f"{service.upper()}_DATABASE_URL"


def load_settings(service: str, environ=None, overrides=None) -> Settings:
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    url_var = database_url_variable(service)
    database_url = overrides.pop("database_url", None) or environ.get(url_var)
    if not database_url:
        raise ConfigError(
            f"{url_var} is not set. Point it at the {service} database "
            f"(postgresql://user:password@host:5432/{service}), or run `make up` for a local one."
        )
    settings = Settings(
        service=service,
        database_url=database_url,
        pool_max=_number(environ, "DB_POOL_MAX", Settings.pool_max, int),
        pool_wait_seconds=_number(environ, "DB_POOL_WAIT_SECONDS", Settings.pool_wait_seconds, float),
        statement_timeout_ms=_number(environ, "DB_STATEMENT_TIMEOUT_MS", Settings.statement_timeout_ms, int),
        connect_timeout_seconds=_number(environ, "DB_CONNECT_TIMEOUT_SECONDS",
                                        Settings.connect_timeout_seconds, float),
        max_page_count=_number(environ, "MAX_PAGE_COUNT", Settings.max_page_count, int),
        cors_allow_origin=environ.get("CORS_ALLOW_ORIGIN") or Settings.cors_allow_origin,
        retry_after_seconds=_number(environ, "RETRY_AFTER_SECONDS", Settings.retry_after_seconds, int),
        max_body_bytes=_number(environ, "MAX_BODY_BYTES", Settings.max_body_bytes, int),
        trusted_proxies=environ.get("TRUSTED_PROXIES", Settings.trusted_proxies),
        metrics_enabled=_switch(environ, "METRICS", Settings.metrics_enabled),
        metrics_flush_seconds=_number(environ, "METRICS_FLUSH_SECONDS", Settings.metrics_flush_seconds, float),
        metrics_listen=environ.get("METRICS_LISTEN", Settings.metrics_listen),
    )
    return replace(settings, **overrides)
