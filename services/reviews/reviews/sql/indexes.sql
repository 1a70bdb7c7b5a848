-- Keys, indexes, sequences and the per-product aggregates, built after a bulk load (or right
-- after schema.sql for an empty database).
ALTER TABLE review                ADD PRIMARY KEY (id);
ALTER TABLE review_photo          ADD PRIMARY KEY (id);
ALTER TABLE characteristic        ADD PRIMARY KEY (id);
ALTER TABLE characteristic_review ADD PRIMARY KEY (id);

-- One index per list order of GET /reviews, holding only what the endpoint may return: the
-- page is read straight off the index, already sorted, without touching reported rows.
CREATE INDEX review_newest_idx   ON review (product_id, date_ms DESC, id DESC) WHERE NOT reported;
CREATE INDEX review_helpful_idx  ON review (product_id, helpfulness DESC, id DESC) WHERE NOT reported;
CREATE INDEX review_relevant_idx ON review (product_id, helpfulness DESC, date_ms DESC, id DESC)
    WHERE NOT reported;
CREATE INDEX review_photo_review_idx ON review_photo (review_id, id);
CREATE INDEX characteristic_product_idx ON characteristic (product_id, id);
-- a report subtracts the reported review's characteristic ratings
CREATE INDEX characteristic_review_review_idx ON characteristic_review (review_id);

-- Ids come from the CSV files; rows POSTed later take the next free one.
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['review', 'review_photo', 'characteristic', 'characteristic_review'] LOOP
        EXECUTE format('CREATE SEQUENCE %1$I_id_seq AS integer OWNED BY %1$I.id', name);
        EXECUTE format('ALTER TABLE %1$I ALTER id SET DEFAULT nextval(%2$L)', name, name || '_id_seq');
        EXECUTE format('SELECT setval(%1$L, coalesce(max(id), 0) + 1, false) FROM %2$I', name || '_id_seq', name);
    END LOOP;
END $$;

-- Aggregates over non-reported reviews, so that GET /reviews/meta reads one row instead of
-- averaging thousands of characteristic ratings. The loader fills them from the base tables;
-- every write (POST /reviews, PUT report) changes them in its own transaction, always locking
-- the product's review_summary row first, so writers of one product take turns and the meta
-- document each of them rebuilds includes every earlier committed write.

-- Sum and count of each characteristic's ratings (a row once it has been rated at all).
CREATE TABLE characteristic_tally (
    characteristic_id integer NOT NULL,
    rating_sum        bigint  NOT NULL,
    rating_count      integer NOT NULL
);

-- Per product: counts of ratings 1..5, of recommend false/true, and the /reviews/meta body
-- built from them (a row for every product with a review or a characteristic).
CREATE TABLE review_summary (
    product_id  integer   NOT NULL,
    ratings     integer[] NOT NULL,  -- ratings[r] = number of reviews rated r
    recommended integer[] NOT NULL,  -- {false, true}
    meta        text      NOT NULL
);

-- The "characteristics" object of /reviews/meta per product, in characteristic-id order; the
-- value is the exact mean rounded half-up to 16 decimals (as avg() of integers prints it).
CREATE VIEW product_characteristics AS
SELECT c.product_id,
       json_object_agg(c.name, json_build_object(
           'id', c.id,
           'value', CASE WHEN t.rating_count > 0
                         THEN round(t.rating_sum::numeric / t.rating_count, 16)::text END)
           ORDER BY c.id) AS characteristics
  FROM characteristic c
  LEFT JOIN characteristic_tally t ON t.characteristic_id = c.id
 GROUP BY c.product_id;

-- The /reviews/meta body, key order as in the contract; counts are strings, and only the
-- ratings and recommend values that occur are listed. Those two objects hold nothing but digits,
-- so they are written as text directly. STABLE (as its body is) so that PostgreSQL inlines it:
-- the bulk build calls it for a million products.
CREATE OR REPLACE FUNCTION review_meta_json(product_id integer, ratings integer[], recommended integer[],
                                            characteristics json) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '{"product_id": "' || product_id || '", "ratings": {'
        || concat_ws(', ', '"1": "' || nullif(ratings[1], 0) || '"', '"2": "' || nullif(ratings[2], 0) || '"',
                           '"3": "' || nullif(ratings[3], 0) || '"', '"4": "' || nullif(ratings[4], 0) || '"',
                           '"5": "' || nullif(ratings[5], 0) || '"')
        || '}, "recommended": {'
        || concat_ws(', ', '"false": "' || nullif(recommended[1], 0) || '"',
                           '"true": "' || nullif(recommended[2], 0) || '"')
        || '}, "characteristics": ' || coalesce(characteristics::text, '{}') || '}'
$$;

-- Filled from the base tables (empty right after schema.sql); keys added after the fill.
-- every rating, less those of reported reviews (few, found through their review id): cheaper
-- than testing each of the millions of ratings against the reported reviews
INSERT INTO characteristic_tally (characteristic_id, rating_sum, rating_count)
SELECT every.characteristic_id,
       every.rating_sum - coalesce(hidden.rating_sum, 0),
       every.rating_count - coalesce(hidden.rating_count, 0)
  FROM (SELECT characteristic_id, sum(value) AS rating_sum, count(*) AS rating_count
          FROM characteristic_review
         GROUP BY characteristic_id) AS every
  LEFT JOIN (SELECT cr.characteristic_id, sum(cr.value) AS rating_sum, count(*) AS rating_count
               FROM review r
               JOIN characteristic_review cr ON cr.review_id = r.id
              WHERE r.reported
              GROUP BY cr.characteristic_id) AS hidden USING (characteristic_id);
ALTER TABLE characteristic_tally ADD PRIMARY KEY (characteristic_id);

INSERT INTO review_summary (product_id, ratings, recommended, meta)
SELECT product_id,
       coalesce(r.ratings, '{0,0,0,0,0}'),
       coalesce(r.recommended, '{0,0}'),
       review_meta_json(product_id, coalesce(r.ratings, '{0,0,0,0,0}'),
                        coalesce(r.recommended, '{0,0}'), c.characteristics)
  FROM (SELECT product_id,
               ARRAY[count(*) FILTER (WHERE rating = 1), count(*) FILTER (WHERE rating = 2),
                     count(*) FILTER (WHERE rating = 3), count(*) FILTER (WHERE rating = 4),
                     count(*) FILTER (WHERE rating = 5)]::integer[] AS ratings,
               ARRAY[count(*) FILTER (WHERE NOT recommend),
                     count(*) FILTER (WHERE recommend)]::integer[] AS recommended
          FROM review
         WHERE NOT reported
         GROUP BY product_id) r
  FULL JOIN product_characteristics c USING (product_id);
ALTER TABLE review_summary ADD PRIMARY KEY (product_id);
