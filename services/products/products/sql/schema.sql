-- Products tables, without keys or indexes: a bulk load creates these (in its own transaction,
-- so that with wal_level=minimal COPY writes no WAL), COPYs into them, then runs indexes.sql.
-- Column names follow the CSV files of the data contract. Dropping the tables also drops the
-- derived documents, view and triggers that indexes.sql builds on them.
DROP TABLE IF EXISTS product_document, related, sku, photo, style, feature, product CASCADE;
DROP FUNCTION IF EXISTS refresh_product_documents(integer[]), product_document_trigger() CASCADE;

CREATE TABLE product (
    id            integer NOT NULL,
    name          text    NOT NULL,
    slogan        text    NOT NULL,
    description   text    NOT NULL,
    category      text    NOT NULL,
    default_price numeric(12, 2) NOT NULL  -- numeric(…, 2) prints "140.00", the contract's string
);

CREATE TABLE feature (
    id         integer NOT NULL,
    product_id integer NOT NULL,
    feature    text    NOT NULL,
    value      text                      -- the CSV's bare word null
);

CREATE TABLE style (
    id             integer NOT NULL,
    product_id     integer NOT NULL,
    name           text    NOT NULL,
    sale_price     numeric(12, 2),
    original_price numeric(12, 2) NOT NULL,
    default_style  boolean NOT NULL
);

CREATE TABLE photo (
    id            integer NOT NULL,
    style_id      integer NOT NULL,
    url           text    NOT NULL,
    thumbnail_url text    NOT NULL
);

CREATE TABLE sku (
    id       integer NOT NULL,
    style_id integer NOT NULL,
    size     text    NOT NULL,
    quantity integer NOT NULL
);

CREATE TABLE related (
    id                 integer NOT NULL,
    product_id         integer NOT NULL,
    related_product_id integer NOT NULL
);
