"""The loader connects as the owner role; when the services run as another role, that role can
use the new tables as soon as they are swapped in (no superuser involved)."""
from contextlib import closing

import psycopg2
import psycopg2.extensions

from atelier_etl.generate import generate
from atelier_etl.load import load_service
from qa import create_app


def test_the_runtime_role_is_granted_what_it_needs_on_the_new_tables(postgres, database_factory, tmp_path):
    generate(tmp_path / "data", scale=0.001, seed=9, dirty=True, jobs=1, log=None)
    owner_url = database_factory("qa").owner
    database = psycopg2.extensions.parse_dsn(owner_url)["dbname"]
    postgres.ensure_role("qa_runtime_test", "runtime-secret")
    with closing(postgres.admin_connect()) as admin, admin.cursor() as cur:
        cur.execute(f'GRANT CONNECT ON DATABASE "{database}" TO qa_runtime_test')
    runtime_url = postgres.url("qa_runtime_test", "runtime-secret", database)

    load_service("qa", tmp_path / "data", tmp_path / "rejects", owner_url, runtime_role="qa_runtime_test")

    with closing(psycopg2.connect(runtime_url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user, count(*) > 0 FROM question")
        assert cur.fetchone() == ("qa_runtime_test", True)
        cur.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'question' AND schemaname = current_schema()")
        assert cur.fetchone() == (psycopg2.extensions.parse_dsn(owner_url)["user"],)
        cur.execute("SELECT has_table_privilege('answer', 'SELECT, INSERT, UPDATE, DELETE'), "
                    "has_table_privilege('answer', 'TRUNCATE'), has_schema_privilege(current_schema(), 'CREATE')")
        assert cur.fetchone() == (True, False, False)  # what it needs, no more
    client = create_app({"database_url": runtime_url}).test_client()
    response = client.post("/qa/questions", json={"body": "Runs as the runtime role?", "name": "n",
                                                  "email": "n@example.com", "product_id": 5})
    assert response.status_code == 201
