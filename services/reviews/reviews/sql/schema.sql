-- Reviews tables, without keys or indexes: a bulk load creates these, COPYs into them, then
-- runs indexes.sql. Column names follow the CSV files of the data contract, except `date_ms`.
DROP TABLE IF EXISTS review_summary, characteristic_tally,
                     characteristic_review, characteristic, review_photo, review, idempotency_key CASCADE;

CREATE TABLE review (
    id             integer  NOT NULL,
    product_id     integer  NOT NULL,
    rating         smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    -- epoch milliseconds, as the CSV stores them: COPY takes them as they come (no per-row
    -- conversion in the loader), they sort like the instant, and the API formats them on output
    date_ms        bigint   NOT NULL,
    summary        text     NOT NULL,
    body           text     NOT NULL,
    recommend      boolean  NOT NULL,
    reported       boolean  NOT NULL DEFAULT false,
    reviewer_name  text     NOT NULL,
    reviewer_email text     NOT NULL,
    response       text,
    helpfulness    integer  NOT NULL DEFAULT 0
);

CREATE TABLE review_photo (
    id        integer NOT NULL,
    review_id integer NOT NULL,
    url       text    NOT NULL
);

CREATE TABLE characteristic (
    id         integer NOT NULL,
    product_id integer NOT NULL,
    name       text    NOT NULL
);

CREATE TABLE characteristic_review (
    id                integer  NOT NULL,
    characteristic_id integer  NOT NULL,
    review_id         integer  NOT NULL,
    value             smallint NOT NULL CHECK (value BETWEEN 1 AND 5)
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
