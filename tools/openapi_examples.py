"""Write real responses into the OpenAPI descriptions as their examples.

Every documented response that carries an `x-request` (the request that produces it) is asked of
a running stack (`make up`: sample data; the public ports follow ATELIER_PORT_BASE), and the body
it answers becomes that response's `example`. The 503 examples come from each service's own
application with an unreachable database. Refuses to write anything if a status differs from
the documented one.

    .venv/bin/python tools/openapi_examples.py            # rewrite the three openapi.json files
    .venv/bin/python tools/openapi_examples.py --check    # only say what would change

It writes to the sample database (the POST and PUT examples add rows and mark some helpful or
reported): run it against a throw-away `make up` stack, not a production one.
"""
import argparse
import logging
import importlib
import json
import os
import sys
from pathlib import Path

import requests

from atelier_common.localpg import ROOT, SERVICES
from atelier_common.openapi import documented_requests

PORT_BASE = int(os.environ.get("ATELIER_PORT_BASE", "3001"))
UNREACHABLE_DATABASE = "postgresql://nobody:none@127.0.0.1:9/none"


def example_of(response: requests.Response):
    if response.headers.get("Content-Type", "").startswith("application/json"):
        return response.json()
    return response.text


def unavailable_example(service: str):
    """What the service answers when its database cannot be reached (its /readyz)."""
    logging.disable(logging.ERROR)  # the expected "database unavailable" would print a traceback
    app = importlib.import_module(service).create_app({"database_url": UNREACHABLE_DATABASE})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503, response.status_code
    return response.get_json()


def fill(service: str, base_url: str) -> tuple[Path, str, str]:
    path = ROOT / "services" / service / service / "openapi.json"
    before = path.read_text()
    document = json.loads(before)
    problems = []
    for request in documented_requests(document):
        answer = requests.request(request["method"], base_url + request["url"], data=request["body"],
                                  headers=request["headers"], timeout=10)
        if answer.status_code != request["status"]:
            problems.append(f"{request['method']} {request['url']}: {answer.status_code}, "
                            f"documented {request['status']}")
            continue
        if request["record"] is False:  # /openapi.json: its example would be this document again
            continue
        for media_type in request["response"].get("content", {}).values():
            media_type["example"] = example_of(answer)
    if problems:
        raise SystemExit(f"{service}: responses differ from the description:\n  " + "\n  ".join(problems))
    unavailable = unavailable_example(service)
    for item in document["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if status == "503":
                    response["content"]["application/json"]["example"] = unavailable
    return path, before, json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    args = parser.parse_args()
    changed = []
    for index, service in enumerate(SERVICES):
        path, before, after = fill(service, f"http://127.0.0.1:{PORT_BASE + index}")
        if before != after:
            changed.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(after)
    verb = "would change" if args.check else "updated"
    print(f"{verb}: {', '.join(map(str, changed))}" if changed else "examples already up to date")
    sys.exit(1 if args.check and changed else 0)


if __name__ == "__main__":
    main()
