"""The Q&A tests' own fixtures (database_url, app and client: atelier_common.testing): `db`, direct access to
that database for the rows a test writes itself and for before/after snapshots."""
import itertools
import json
from contextlib import closing

import psycopg2
import pytest


TABLES = ("question", "answer", "answer_photo")
_product_ids = itertools.count(1_000_001)


class Database:
    def __init__(self, url: str):
        self.url = url

    def execute(self, sql: str, params=()):
        with closing(psycopg2.connect(self.url)) as conn, conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None

    def value(self, sql: str, params=()):
        return self.execute(sql, params)[0][0]

    @staticmethod
    def fresh_product_id() -> int:
        """A product id no other test of the session uses (a module's database is shared)."""
        return next(_product_ids)

    def add_question(self, product_id, body="q", date="2020-07-27T21:18:34.409Z", name="asker",
                     email="asker@example.com", reported=False, helpful=0) -> int:
        return self.value("""
            INSERT INTO question (product_id, body, date_written, asker_name, asker_email, reported, helpful)
            VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                          (product_id, body, date, name, email, reported, helpful))

    def add_answer(self, question_id, body="a", date="2021-01-02T03:04:05.006Z", name="answerer",
                   email="answerer@example.com", reported=False, helpful=0, photos=()) -> int:
        answer_id = self.value("""
            INSERT INTO answer (question_id, body, date_written, answerer_name, answerer_email, reported, helpful)
            VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                               (question_id, body, date, name, email, reported, helpful))
        for url in photos:
            self.execute("INSERT INTO answer_photo (answer_id, url) VALUES (%s, %s)", (answer_id, url))
        return answer_id

    def photo_ids(self, answer_id) -> list:
        return [row[0] for row in self.execute(
            "SELECT id FROM answer_photo WHERE answer_id = %s ORDER BY id", (answer_id,))]

    @staticmethod
    def key_order(raw: bytes):
        """A response's JSON with every object as a list of (key, value) pairs: the raw key order."""
        return json.loads(raw, object_pairs_hook=list)

    def snapshot(self) -> dict:
        """Every row of every table and where each id sequence stands: equal snapshots mean
        nothing was written (even a rolled-back insert would have moved a sequence)."""
        state = {}
        for table in TABLES:
            state[table] = self.execute(f"SELECT * FROM {table} ORDER BY id")
            state[table + " sequence"] = self.execute(f"SELECT last_value, is_called FROM {table}_id_seq")
        return state


@pytest.fixture(scope="module")
def db(database_url):
    return Database(database_url.owner)  # the owner: snapshots read sequences, some tests add triggers
