"""One naming rule for what the services name in SQL and Python (docs/development.md, "Names").

- A prepared statement's name is its constant's name in `queries.py`, in lower case, prefixed
  with `<service>_` unless it already begins with the service's name (`qa.queries.INSERT_QUESTION`
  is `qa_insert_question`, `products.queries.PRODUCTS_PAGE` is `products_page`); a family of
  statements kept in a dict is named `<service>_<key>` (`reviews.queries.REVIEW_PAGES["newest"]`
  is `reviews_newest`).
- Tables are singular snake_case nouns; an index is `<table>_<what it serves>_idx`.
- A view function is named after its route, the operationId (tests/test_routes.py).
"""
import importlib
import re

import pytest

from atelier_common.db import Statement
from atelier_common.localpg import ROOT, SERVICES


@pytest.mark.parametrize("service", SERVICES)
def test_every_prepared_statement_is_named_after_its_constant(service):
    queries = importlib.import_module(f"{service}.queries")
    seen = {}
    for constant, value in vars(queries).items():
        if isinstance(value, Statement):
            lower = constant.lower()
            expected = lower if lower.startswith(service) else f"{service}_{lower}"
            assert value.name == expected, constant
            seen[value.name] = constant
        elif isinstance(value, dict) and value and all(isinstance(v, Statement) for v in value.values()):
            for key, statement in value.items():
                assert statement.name == f"{service}_{key}", (constant, key)
                seen[statement.name] = constant
    assert seen, "no statements found"
    assert len(seen) == len(set(seen)), "two statements share a name"


@pytest.mark.parametrize("service", SERVICES)
def test_tables_and_indexes_follow_the_rule(service):
    sql = "\n".join(p.read_text() for p in (ROOT / "services" / service / service / "sql").glob("*.sql"))
    tables = re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?([a-z_]+)", sql, re.I)
    assert tables
    for table in tables:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", table) and not table.endswith("s"), table
    for index, table in re.findall(r"CREATE (?:UNIQUE )?INDEX (?:IF NOT EXISTS )?([a-z_]+) ON ([a-z_]+)", sql, re.I):
        assert index.startswith(f"{table}_") and index.endswith("_idx"), index
