"""The Products endpoints for the shared benchmark harness (`make bench SERVICE=products`,
bench/atelier_bench/service.py).

Product ids are drawn uniformly from the last 10% of the id range. Ids have gaps (about 4% of
that range is no product), so a few drawn ids answer 404: the harness counts them as non-2xx."""
from atelier_bench import Endpoint

from products import queries

ID_RANGE = "SELECT min(id), max(id) FROM product"

ENDPOINTS = [
    Endpoint("GET /products", path="/products", statement=queries.PRODUCTS_PAGE, params=("5", "0")),
    Endpoint("GET /products/:id", path="/products/{id}", statement=queries.PRODUCT, params=(":id",)),
    Endpoint("GET /products/:id/styles", path="/products/{id}/styles",
             statement=queries.PRODUCT_STYLES, params=(":id",)),
    Endpoint("GET /products/:id/related", path="/products/{id}/related",
             statement=queries.PRODUCT_RELATED, params=(":id",)),
]
