"""Benchmark definitions of the Ratings & Reviews service (`make bench SERVICE=reviews`).

Product ids are drawn from the last 10% of the range (bench/atelier_bench/service.py). The write mix:
POST /reviews (without characteristic ratings: a drawn product's characteristic ids cannot be
templated into the body; the summary lock, the insert and the meta rebuild still run) and
PUT helpful on a drawn review id."""
from atelier_bench import Endpoint
from reviews import queries

ID_RANGE = "SELECT min(product_id), max(product_id) FROM review"

NEW_REVIEW = ('{"product_id": {id}, "rating": 4, "summary": "Benchmark review", '
              '"body": "A review posted by the benchmark, long enough to pass the fifty character rule.", '
              '"recommend": true, "name": "bencher", "email": "bench@example.com", '
              '"photos": ["https://example.com/bench.jpg"]}')

ENDPOINTS = [
    *(Endpoint(f"GET /reviews count={count} sort={sort}",
               path=f"/reviews?product_id={{id}}&count={count}&sort={sort}",
               statement=queries.REVIEW_PAGES[sort], params=(":id", "1", str(count), "0"))
      for count in (5, 100) for sort in ("relevant", "newest", "helpful")),
    Endpoint("GET /reviews/meta", path="/reviews/meta?product_id={id}", statement=queries.META,
             params=(":id",)),
    Endpoint("POST /reviews", method="POST", path="/reviews", body=NEW_REVIEW),
    Endpoint("PUT /reviews/:id/helpful", method="PUT", path="/reviews/{id}/helpful",
             id_range="SELECT min(id), max(id) FROM review"),
]
