"""The one list of the API's routes and the one definition of a page load.

Routes come from the services' OpenAPI descriptions (services/<name>/<name>/openapi.json): each
operation's `operationId` is its route name, which is also the Flask view's name, the `route`
label of its metrics, its k6 tag and its row in the benchmarks and the capacity model. A GET is
a read, anything else a write (it goes to the service's primary database).

The page load (what the front-end's product page asks for) is k6/lib/page-load.json, read here,
by k6 (k6/page-load.js), the fleet benchmark and the soak.

Only the standard library: infra/terraform/capacity.py reads it too.
"""
import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(os.environ.get("ATELIER_ROOT") or Path(__file__).resolve().parents[2])
# The services: every folder services/<name>/<name>/ with an OpenAPI description.
SERVICES = tuple(sorted(p.parent.parent.name for p in (ROOT / "services").glob("*/*/openapi.json")
                       if p.parent.name == p.parent.parent.name))
PAGE_LOAD = ROOT / "k6" / "lib" / "page-load.json"
# Every instance answers these; they are not the API.
PLUMBING = frozenset({"healthz", "readyz", "openapi", "metrics"})


def openapi_path(service: str) -> Path:
    return ROOT / "services" / service / service / "openapi.json"


@dataclass(frozen=True)
class Route:
    service: str
    method: str   # GET, POST, PUT
    path: str     # the OpenAPI template: /qa/questions/{question_id}/answers
    name: str     # the operationId
    status: int   # the documented success status

    @property
    def kind(self) -> str:
        return "read" if self.method == "GET" else "write"

    @property
    def pattern(self):
        """A regular expression matching a concrete request target of this route (a trailing
        slash and a query string allowed)."""
        parts = re.split(r"\{[^}]+\}", self.path)
        return re.compile("".join(re.escape(p) if i == 0 else r"[^/?]+" + re.escape(p)
                                  for i, p in enumerate(parts)) + r"/?(\?.*)?$")

    def url(self, *values) -> str:
        """The path with its parameters filled in, in order."""
        values = iter(values)
        return re.sub(r"\{[^}]+\}", lambda _: str(next(values)), self.path)


@cache
def all_routes(plumbing: bool = False) -> tuple:
    """Every route of the three services, in the order of their OpenAPI files."""
    found = []
    for service in SERVICES:
        document = json.loads(openapi_path(service).read_text())
        for path, item in document["paths"].items():
            for method, operation in item.items():
                if not isinstance(operation, dict) or "operationId" not in operation:
                    continue
                name = operation["operationId"]
                if name in PLUMBING and not plumbing:
                    continue
                status = min(int(code) for code in operation["responses"] if code.startswith("2"))
                found.append(Route(service, method.upper(), path, name, status))
    return tuple(found)


def by_name() -> dict:
    """{route name: Route} of the API's routes."""
    return {route.name: route for route in all_routes()}


def kinds_by_service() -> dict:
    """{service: {route name: "read" | "write"}}."""
    return {service: {r.name: r.kind for r in all_routes() if r.service == service} for service in SERVICES}


def route_name(method: str, target: str):
    """The route name of a request (method and path with its query), or None."""
    for route in all_routes():
        if route.method == method and route.pattern.match(target):
            return route.name
    return None


@cache
def page_load() -> dict:
    """k6/lib/page-load.json: the reads of a product page and the writes that go with them."""
    definition = json.loads(PAGE_LOAD.read_text())
    known = by_name()
    named = [*definition["product"], *definition["each_related"], *definition["page"], *definition["writes"]]
    unknown = sorted({name for name in named if name not in known})
    if unknown:
        raise ValueError(f"{PAGE_LOAD}: no route named {', '.join(unknown)} in the OpenAPI descriptions")
    return definition


def page_reads(product: int, related) -> list:
    """(route name, request target) of every read of one page load of product, in order: the
    product's own, each related product's card, then the page's."""
    definition = page_load()
    routes = by_name()

    def target(name, product_id):
        query = "&".join(f"{k}={v}".replace("{product_id}", str(product_id))
                         for k, v in definition["query"].get(name, {}).items())
        path = routes[name].url(product_id) if "{" in routes[name].path else routes[name].path
        return f"{path}?{query}" if query else path

    reads = [(name, target(name, product)) for name in definition["product"]]
    for other in related:
        reads += [(name, target(name, other)) for name in definition["each_related"]]
    reads += [(name, target(name, product)) for name in definition["page"]]
    return reads


def main():
    """`python -m atelier_bench.routes`: the route list, where each route's code lives."""
    print(f"{'route (operationId, view)':<26} {'service':<9} {'method':<7} {'path':<40} {'kind':<6} status")
    for r in all_routes():
        print(f"{r.name:<26} {r.service:<9} {r.method:<7} {r.path:<40} {r.kind:<6} {r.status}")
    print("\nview: services/<service>/<service>/routes.py (def <route>); SQL: queries.py; input: schemas.py; "
          "contract: openapi.json")


if __name__ == "__main__":
    main()
