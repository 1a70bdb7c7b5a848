"""The Q&A endpoints for the shared benchmark harness (`make bench SERVICE=qa`,
bench/atelier_bench/service.py).

Ids are drawn uniformly from the last 10% of each endpoint's range: product ids for the question
lists and POST /qa/questions; question ids (the newest 10%, whose answers are as many as any
other question's) for the answers list, POST answer and PUT helpful."""
from atelier_bench import Endpoint

from qa import queries

ID_RANGE = "SELECT min(product_id), max(product_id) FROM question"
QUESTION_IDS = "SELECT min(id), max(id) FROM question"

ENDPOINTS = [
    Endpoint("GET /qa/questions count 5", path="/qa/questions?product_id={id}&count=5",
             statement=queries.QUESTIONS, params=(":id", "5", "0")),
    Endpoint("GET /qa/questions count 100", path="/qa/questions?product_id={id}&count=100",
             statement=queries.QUESTIONS, params=(":id", "100", "0")),
    Endpoint("GET /qa/questions/:id/answers", path="/qa/questions/{id}/answers",
             statement=queries.ANSWERS, params=(":id", "1", "5", "0"), id_range=QUESTION_IDS),
    # The write mix: each kind of write, on rows of the same ranges (pgbench runs the statement
    # as the endpoint does: one autocommit statement, commit included). Ids that fall in a gap of
    # the id range, and answers to reported questions, are 404s.
    Endpoint("POST /qa/questions", method="POST", path="/qa/questions",
             statement=queries.INSERT_QUESTION,
             params=(":id", "'Does this run true to size?'", "'bench'", "'bench@example.com'"),
             body='{"body": "Does this run true to size?", "name": "bench", '
                  '"email": "bench@example.com", "product_id": {id}}'),
    Endpoint("POST /qa/questions/:id/answers", method="POST", path="/qa/questions/{id}/answers",
             id_range=QUESTION_IDS, statement=queries.INSERT_ANSWER,
             params=(":id", "'It runs a little small.'", "'bench'", "'bench@example.com'",
                     "'{https://images.example/bench.jpg}'"),
             body='{"body": "It runs a little small.", "name": "bench", "email": "bench@example.com", '
                  '"photos": ["https://images.example/bench.jpg"]}'),
    Endpoint("PUT /qa/questions/:id/helpful", method="PUT", path="/qa/questions/{id}/helpful",
             id_range=QUESTION_IDS, statement=queries.MARK_QUESTION_HELPFUL, params=(":id",)),
    Endpoint("PUT /qa/answers/:id/helpful", method="PUT", path="/qa/answers/{id}/helpful",
             id_range="SELECT min(id), max(id) FROM answer"),
]
