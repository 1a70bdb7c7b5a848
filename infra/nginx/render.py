#!/usr/bin/env python3
"""Render one service's nginx balancer configuration (standard library only: an instance of
the AWS fleet runs it with the system python3 at boot, `make up` with the project's venv).

    python3 infra/nginx/render.py --service qa --listen 127.0.0.1:3002 \
        --upstream 127.0.0.1:3111 --upstream 127.0.0.1:3112 [--cache 0|1] \
        [--write-rate-limit 10] [--prefix DIR] [--pid FILE] [--out FILE]
    python3 infra/nginx/render.py --front --service qa --listen 127.0.0.1:3002 \
        --upstream 127.0.0.1:3061 --upstream 127.0.0.1:3062 [--prefix DIR] [--pid FILE]

The template is nginx.conf.template (front.conf.template with --front); `{{include conf/x.conf}}` inlines one concern's file and
`{{name}}` a value computed here, so the output is one complete file. nginx then runs with
`nginx -p PREFIX -c FILE` (see infra/nginx/README.md).
"""
import argparse
import importlib.util
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "nginx.conf.template"
# --front: the stand-in for the AWS load balancer in front of several balancers (local only).
FRONT_TEMPLATE = HERE / "front.conf.template"
SETTINGS = HERE.parent.parent / "common" / "atelier_common" / "config.py"
# The cache listener pings every quarter second (atelier_common.cache_listener); a balancer
# whose listener has been silent this long stops caching mutable views.
LEASE_SECONDS = 2
PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)(?P<text>.*?)\{\{(?P<name>[^{}]+)\}\}", re.M)

# How long each service's GET answers are kept, and how much room they get. The catalogue
# changes only with `make load` (whose notification flushes it): kept an hour, served stale
# while one request refreshes it or when every instance fails. The other views change with
# every write and are versioned (lua/atelier_cache.lua): kept --view-lifetime seconds, never
# served once expired (an expired entry must never outlive its version: README, "Caching").
CATALOGUE = {"cache_valid": "200 404 60m", "cache_inactive": "60m", "keys_zone": "128m", "cache_max_size": "4g",
             "cache_use_stale": "proxy_cache_use_stale error timeout updating;"}
MUTABLE = {"cache_valid": "200 {{view_lifetime}}s", "cache_inactive": "{{view_lifetime}}s", "keys_zone": "64m",
           "cache_max_size": "2g", "cache_use_stale": "proxy_cache_use_stale off;"}
CACHE_POLICY = {"products": CATALOGUE, "qa": MUTABLE, "reviews": MUTABLE}


def render_text(text: str, values: dict) -> str:
    """Replace each {{name}} and {{include file}}; a multi-line value keeps the indentation of
    the line it lands on, so the output reads like the template."""
    def replace(match):
        indent, before, name = match["indent"], match["text"], match["name"].strip()
        if name.startswith("include "):
            value = render_text((HERE / name.split(None, 1)[1]).read_text(), values).rstrip("\n")
        elif name in values:
            value = str(values[name])
        else:
            raise KeyError(f"the template uses {{{{{name}}}}}, which render.py does not set")
        # Continuation lines take the indentation of the line the placeholder is on.
        return indent + before + value.replace("\n", "\n" + indent)

    previous = None
    while previous != text:  # an inlined file may itself hold placeholders
        previous, text = text, PLACEHOLDER.sub(replace, text)
    return text


def seconds(duration: str) -> float:
    """An nginx duration ("10s", "500ms", "1m", "10") in seconds."""
    match = re.fullmatch(r"([0-9.]+)(ms|s|m)?", duration)
    if not match:
        raise ValueError(f"not a duration: {duration!r}")
    return float(match[1]) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[match[2]]


def size_bytes(size: str) -> int:
    """A size ("32m", "512k", "1000") in bytes."""
    match = re.fullmatch(r"([0-9]+)([kKmM])?", size)
    if not match:
        raise ValueError(f"not a size: {size!r}")
    return int(match[1]) * {"k": 1024, "m": 1024 * 1024, None: 1}[(match[2] or "").lower() or None]


def max_page_count() -> int:
    """The services' clamp of `count`: MAX_PAGE_COUNT, else their default (read from their
    settings module, so that the balancer's cache key clamps exactly as they do)."""
    if os.environ.get("MAX_PAGE_COUNT"):
        return int(os.environ["MAX_PAGE_COUNT"])
    spec = importlib.util.spec_from_file_location("atelier_settings", SETTINGS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Settings.max_page_count


def optional(enabled: bool, snippet: str, values: dict, reason: str) -> str:
    return render_text(snippet, values).rstrip("\n") if enabled else f"# {reason}"


def values_for(args) -> dict:
    prefix = Path(args.prefix).resolve()
    values = {
        "service": args.service,
        "listen": args.listen,
        "upstream_servers": "\n".join(
            # Passive health check: one failed attempt takes the instance out for 5 s, then one
            # request probes it again.
            f"server {address} max_fails=1 fail_timeout=5s;" for address in args.upstream),
        "prefix": str(prefix),
        "pid": str(Path(args.pid).resolve()) if args.pid else str(prefix / "nginx.pid"),
        "access_log": (f"{prefix}/access.log atelier buffer=64k flush=1s" if args.access_log is None
                       else "off" if args.access_log == "off"
                       else f"{Path(args.access_log).resolve()} atelier buffer=64k flush=1s"),
        "modules_dir": args.modules_dir,
        "lua_dir": str(HERE / "lua"),
        "workers": args.workers,
        "max_body": args.max_body,
        "upstream_timeout": args.upstream_timeout,
        "view_lifetime": args.view_lifetime,
        # A version outlives every entry cached under the version before it: the entry's
        # lifetime, plus the longest a request can take to fill it (3 tries of the upstream
        # timeout), plus nginx's whole-second rounding (README, "Caching").
        "version_ttl": int(args.view_lifetime + 3 * seconds(args.upstream_timeout) + 2),
        "lease": LEASE_SECONDS,
        "max_count": args.max_page_count,
        "fill_budget": size_bytes(args.fill_budget),
        "cors_origins": 'default "*";' if "*" in args.cors_origin else "\n".join(
            ['default "";'] + [f'"{origin}" $http_origin;' for origin in args.cors_origin]),
        "write_rate": args.write_rate_limit,
        "write_burst": 2 * args.write_rate_limit,
        "read_rate": max(args.read_rate_limit, 1),
        "read_burst": 2 * args.read_rate_limit,
        "connection_limit": args.connection_limit,
        "frontend_connection_limit": args.frontend_connection_limit,
        "request_deadline": args.request_deadline,
        "metrics_listen": args.metrics_listen,
        "disk_reserve": 1024 * 1024,
        "frontend_addresses": "\n".join(f"{cidr} {name};" for name, cidr in args.frontend)
        or "# (none: --frontend NAME=CIDR)",
        "frontend_tokens": "\n".join(f'"{token}" {name};' for name, token in args.frontend_token)
        or "# (none: --frontend-token NAME=ENV_VARIABLE)",
        "real_ip_from": "\n".join(
            [f"set_real_ip_from {cidr};" for cidr in args.real_ip_from]
            + ["real_ip_header X-Forwarded-For;", "real_ip_recursive on;"]) if args.real_ip_from
        else "# (none: clients connect to this balancer directly)",
        **CACHE_POLICY[args.service],
    }
    # Where the cached answers live: PREFIX/cache unless --cache-dir names a folder, best a
    # memory-backed one (tmpfs): creating, renaming and deleting a file per miss costs nginx far
    # more CPU on a disk filesystem (infra/nginx/README.md, "Caching").
    values["cache_dir"] = str(Path(args.cache_dir).resolve()) if args.cache_dir else f"{prefix}/cache"
    if args.cache_max_size:
        values["cache_max_size"] = args.cache_max_size
    values["connection_limits"] = "\n".join(filter(None, [
        optional(args.connection_limit > 0, "limit_conn client_connections {{connection_limit}};", values,
                 "--connection-limit 0: no per-client limit on requests in progress"),
        optional(args.connection_limit > 0 and bool(args.frontend or args.frontend_token),
                 "limit_conn frontend_connections {{frontend_connection_limit}};", values,
                 "(no front-end server configured)")]))
    values["read_limit"] = optional(args.read_rate_limit > 0, "limit_req zone=reads burst={{read_burst}} nodelay;",
                                    values, "--read-rate-limit 0: reads are not rate-limited")
    values["metrics_locations"] = "\n".join(
        [f"location = /metrics/{i} {{ proxy_pass http://{address}/metrics; }}"
         for i, address in enumerate(args.metrics_upstream)]
        + [f"location = /metrics {{ proxy_pass http://{args.metrics_upstream[0]}/metrics; }}"]
        if args.metrics_upstream else [])
    values["metrics_server"] = optional(bool(args.metrics_listen), "{{include conf/metrics.conf}}", values,
                                        "no --metrics-listen: the instances' metrics are not served here")
    values["cache_zone"] = optional(args.cache, "{{include conf/cache.conf}}", values,
                                    "CACHE=0: nothing is cached")
    values["disk_guard"] = optional(args.cache, """\
# A full volume: answers are passed on from memory, not stored (conf/workers.conf).
set_by_lua_block $atelier_disk_full { return require("atelier_disk").full() }
proxy_no_cache $atelier_disk_full;""", values, "CACHE=0: nothing is written to the disk")
    values["cache_reads"] = optional(args.cache, "{{include conf/cache_reads.conf}}", values,
                                     "CACHE=0: every read reaches an instance")
    values["write_rate_zone"] = optional(args.write_rate_limit > 0, "{{include conf/write_rate_limit.conf}}",
                                         values, "WRITE_RATE_LIMIT=0: writes are not rate-limited")
    values["write_limit"] = optional(args.write_rate_limit > 0, "limit_req zone=writes burst={{write_burst}};",
                                     values, "WRITE_RATE_LIMIT=0: no write rate limit")
    return values


def _size(text):
    try:
        size_bytes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _named(what):
    def parse(text):
        name, sep, value = text.partition("=")
        if not sep or not re.fullmatch(r"[a-z0-9_-]+", name) or not re.fullmatch(r"[0-9A-Fa-f.:/]+", value):
            raise argparse.ArgumentTypeError(f"expected NAME=CIDR (name: a-z 0-9 _ -), got {text!r}")
        return name, value
    return parse


def _origin(text):
    if text != "*" and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?", text):
        raise argparse.ArgumentTypeError(f"expected * or scheme://host[:port], got {text!r}")
    return text


def _named_secret(text):
    """NAME=ENV_VARIABLE: the token is read from the environment (a long random string)."""
    name, sep, variable = text.partition("=")
    if not sep or not re.fullmatch(r"[a-z0-9_-]+", name):
        raise argparse.ArgumentTypeError(f"expected NAME=ENV_VARIABLE, got {text!r}")
    token = os.environ.get(variable, "")
    if not re.fullmatch(r"[A-Za-z0-9_.~-]{24,}", token):
        raise argparse.ArgumentTypeError(
            f"{variable} must hold the front-end's token: 24 or more of A-Z a-z 0-9 _ . ~ -")
    return name, token


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", required=True, choices=sorted(CACHE_POLICY))
    parser.add_argument("--listen", required=True, help="port or address:port of the balancer")
    parser.add_argument("--upstream", action="append", required=True,
                        help="address:port of one instance (repeat for each)")
    parser.add_argument("--front", action="store_true",
                        help="render the front (round robin over balancers given as --upstream; no cache, "
                             "no retries: the local stand-in for the AWS load balancer)")
    parser.add_argument("--cache", type=int, choices=(0, 1), default=1)
    parser.add_argument("--write-rate-limit", type=int, default=10,
                        help="POST/PUT per second per client (burst twice that); 0 turns it off")
    parser.add_argument("--prefix", default=".", help="folder for logs, cache, temp files, control socket")
    parser.add_argument("--cache-dir", help="folder of the cached answers (default PREFIX/cache), best on a "
                        "memory-backed filesystem (tmpfs)")
    parser.add_argument("--cache-max-size", type=_size, help="bound of the cached answers' files, e.g. 900m "
                        "(default: the service's policy, 4g for products, 2g for qa and reviews)")
    parser.add_argument("--pid", help="pid file (default PREFIX/nginx.pid)")
    parser.add_argument("--access-log", help="access log file, or `off` (default PREFIX/access.log)")
    parser.add_argument("--workers", default="auto", help="nginx worker processes")
    parser.add_argument("--max-body", default="64k", help="largest request body (413 above)")
    parser.add_argument("--view-lifetime", type=int, default=600,
                        help="seconds a mutable view (questions, answers, reviews, meta) stays cached")
    parser.add_argument("--fill-budget", default="32m",
                        help="bytes one client may make the cache store per minute (k, m suffixes); 0: no budget")
    parser.add_argument("--max-page-count", type=int, default=max_page_count(),
                        help="the services' clamp of `count` (MAX_PAGE_COUNT; must equal theirs)")
    parser.add_argument("--upstream-timeout", default="10s",
                        help="how long an instance may take to answer (then 504, or the next one for a GET)")
    parser.add_argument("--cors-origin", action="append", type=_origin,
                        help="an origin (https://shop.example) whose pages may read nginx's own answers; repeat "
                             "for several (default `*`: any)")
    parser.add_argument("--real-ip-from", action="append", default=[],
                        help="CIDR of a proxy in front (AWS load balancer) whose X-Forwarded-For is trusted")
    parser.add_argument("--read-rate-limit", type=int, default=200,
                        help="GET/HEAD/OPTIONS per second per client (burst twice that, not delayed); 0 turns it off")
    parser.add_argument("--connection-limit", type=int, default=64,
                        help="requests in progress at once per client (429 above); 0 turns it off")
    parser.add_argument("--frontend-connection-limit", type=int, default=1024,
                        help="requests in progress at once per configured front-end server")
    parser.add_argument("--request-deadline", type=int, default=10,
                        help="seconds from a request's first byte by which its header and body must have arrived (408)")
    parser.add_argument("--frontend", action="append", default=[], type=_named("CIDR"),
                        help="NAME=CIDR: a front-end server whose X-Forwarded-For names its shoppers")
    parser.add_argument("--frontend-token", action="append", default=[], type=_named_secret,
                        help="NAME=ENV_VARIABLE: a front-end server known by the X-Atelier-Client token in that "
                             "environment variable (the token itself is never a command-line argument)")
    parser.add_argument("--metrics-listen", help="address:port of a private listener serving the instances' "
                        "/metrics (AWS: the machine's private address, port 9100); off by default")
    parser.add_argument("--metrics-upstream", action="append", default=[],
                        help="address:port of one instance's metrics listener (METRICS_LISTEN), in --upstream order")
    parser.add_argument("--modules-dir", default="/usr/lib/nginx/modules")
    parser.add_argument("--out", help="write here instead of stdout")
    args = parser.parse_args(argv)
    args.cors_origin = args.cors_origin or ["*"]
    if args.metrics_listen and not args.metrics_upstream:
        parser.error("--metrics-listen needs --metrics-upstream (each instance's METRICS_LISTEN)")
    for option in ("write_rate_limit", "read_rate_limit", "connection_limit"):
        if getattr(args, option) < 0:
            parser.error(f"--{option.replace('_', '-')} must be 0 or more")
    return args


def main(argv=None):
    args = parse_args(argv)
    config = render_text((FRONT_TEMPLATE if args.front else TEMPLATE).read_text(), values_for(args))
    if not args.front:
        # The control socket's folder: only the user who starts nginx may enter it (conf/control.conf).
        control = Path(args.prefix).resolve() / "control"
        control.mkdir(parents=True, exist_ok=True)
        control.chmod(0o700)
    if args.out:
        Path(args.out).write_text(config)
    else:
        sys.stdout.write(config)


if __name__ == "__main__":
    main()
