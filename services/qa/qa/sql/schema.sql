-- Q&A tables, without keys or indexes: a bulk load creates these (in its own transaction, so
-- COPY skips the WAL), COPYs into them, then runs indexes.sql. Column names follow the CSV
-- files of the data contract. Dropping the tables also drops their identity sequences.
DROP TABLE IF EXISTS answer_photo, answer, question, idempotency_key CASCADE;

CREATE TABLE question (
    id           integer     NOT NULL,
    product_id   integer     NOT NULL,
    body         text        NOT NULL,
    date_written timestamptz NOT NULL,
    asker_name   text        NOT NULL,
    asker_email  text        NOT NULL,
    reported     boolean     NOT NULL DEFAULT false,
    helpful      integer     NOT NULL DEFAULT 0
);

CREATE TABLE answer (
    id             integer     NOT NULL,
    question_id    integer     NOT NULL,
    body           text        NOT NULL,
    date_written   timestamptz NOT NULL,
    answerer_name  text        NOT NULL,
    answerer_email text        NOT NULL,
    reported       boolean     NOT NULL DEFAULT false,
    helpful        integer     NOT NULL DEFAULT 0
);

CREATE TABLE answer_photo (
    id        integer NOT NULL,
    answer_id integer NOT NULL,
    url       text    NOT NULL
);

-- The answers of POSTs sent with an Idempotency-Key (atelier_common/idempotency.py), written in
-- the write's own statement or transaction and kept 24 hours. Not bulk-loaded: its keys are here.
CREATE TABLE idempotency_key (
    key         text        PRIMARY KEY,
    fingerprint bytea       NOT NULL,  -- SHA-256 of the request's method, path and body
    location    text        NOT NULL,  -- the 201's Location
    product_id  integer,               -- what the write changed (the balancer's X-Invalidates)
    question_id integer,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idempotency_key_created_idx ON idempotency_key (created_at);  -- expiry, oldest first
