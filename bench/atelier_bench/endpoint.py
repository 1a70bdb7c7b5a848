"""An endpoint as a service describes it for `make bench` (services/<name>/bench.py)."""
from dataclasses import dataclass


@dataclass
class Endpoint:
    name: str
    path: str                      # with {id} where the drawn id goes
    method: str = "GET"
    body: str = None               # JSON text, {id} replaced too
    statement: object = None       # the atelier_common.db.Statement the endpoint runs, for pgbench
    params: tuple = ()             # the statement's parameters; ":id" stands for the drawn id
    id_range: str = None           # SQL giving (min, max); default: the module's ID_RANGE
