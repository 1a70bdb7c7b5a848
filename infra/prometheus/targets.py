"""Write Prometheus's file-based discovery list (targets.json) for the Atelier instances.

    python infra/prometheus/targets.py --out .data/prometheus/targets.json \
        --target products=127.0.0.1:3101 --target products=127.0.0.1:3102 --target qa=127.0.0.1:3111

Each target is SERVICE=HOST:PORT of one gunicorn instance (never a balancer: /metrics is per
instance). --scrape-interval sets a per-target interval (the tests scrape every second).
Only the Python standard library, so a machine without the project's venv can run it."""
import argparse
import json
import os
import re
import sys
from collections import defaultdict

SERVICES = ("products", "qa", "reviews")


def target(text: str):
    match = re.fullmatch(r"([a-z]+)=([\w.\-]+:\d+)", text)
    if not match or match.group(1) not in SERVICES:
        raise argparse.ArgumentTypeError(f"{text!r} is not SERVICE=HOST:PORT with SERVICE one of {SERVICES}")
    return match.group(1), match.group(2)


def duration(text: str):
    if not re.fullmatch(r"\d+(ms|s|m)", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a Prometheus duration such as 15s")
    return text


def targets_document(targets, scrape_interval=None) -> list:
    by_service = defaultdict(list)
    for service, address in targets:
        by_service[service].append(address)
    groups = []
    for service, addresses in by_service.items():
        labels = {"service": service}
        if scrape_interval:
            labels["__scrape_interval__"] = scrape_interval
            labels["__scrape_timeout__"] = scrape_interval  # may not exceed the interval
        groups.append({"targets": addresses, "labels": labels})
    return groups


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=target, action="append", required=True, metavar="SERVICE=HOST:PORT")
    parser.add_argument("--scrape-interval", type=duration)
    parser.add_argument("--out", help="file to write (atomically: Prometheus may read it any time); default stdout")
    args = parser.parse_args(argv)
    text = json.dumps(targets_document(args.target, args.scrape_interval), indent=2) + "\n"
    if not args.out:
        sys.stdout.write(text)
        return
    partial = args.out + ".partial"
    with open(partial, "w") as handle:
        handle.write(text)
    os.replace(partial, args.out)


if __name__ == "__main__":
    main()
