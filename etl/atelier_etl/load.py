"""`make load DATA=dir [SERVICE=name]`: replace a service's data with the CSV files in a folder.

Each service's loader lives in its own package (`<service>/loader.py`, next to its schema); this
command finds the database (<SERVICE>_OWNER_DATABASE_URL, else <SERVICE>_DATABASE_URL, else the
local server's owner role: loading creates tables) and runs it. Rejected
records go to `<DATA>/rejects/<service>/`, one file per input file.
"""
import argparse
import importlib
import sys
import time
from pathlib import Path

import psycopg2

from atelier_common.localpg import SERVICES, owner_database_url
from atelier_etl.copyload import print_reports


def load_service(service: str, data: Path, rejects: Path):
    loader = importlib.import_module(f"{service}.loader")
    missing = [name for name in loader.FILES if not (data / name).exists()]
    if missing:
        raise SystemExit(f"{service}: {data} lacks {', '.join(missing)}")
    started = time.monotonic()
    print(f"{service}: loading {', '.join(loader.FILES)} from {data}", file=sys.stderr, flush=True)
    conn = psycopg2.connect(owner_database_url(service))
    try:
        reports = loader.load(conn, data, rejects / service)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
    print_reports(service, reports)
    print(f"{service}: loaded in {time.monotonic() - started:.1f} s; rejects in {rejects / service}")
    return reports


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder holding the CSV files")
    parser.add_argument("--service", choices=SERVICES, help="one service (default: all three)")
    parser.add_argument("--rejects", type=Path, help="where rejects files go (default: DATA/rejects)")
    args = parser.parse_args(argv)
    rejects = args.rejects or args.data / "rejects"
    for service in [args.service] if args.service else SERVICES:
        load_service(service, args.data, rejects)


if __name__ == "__main__":
    main()
