"""All SQL of the Ratings & Reviews service.

Reads return the response body as JSON text built by PostgreSQL. Writes keep the per-product
aggregates of sql/indexes.sql exact: every write transaction locks the product's review_summary
row before it touches characteristic_tally, then rebuilds the product's meta document
(REBUILD_META) in a later statement, which therefore sees every earlier committed write.
"""
from atelier_common.cache_listener import notify_changed
from atelier_common.db import Statement

# The three list orders of GET /reviews; each is served by its own partial index (indexes.sql).
SORT_ORDERS = {
    "newest": "date_ms DESC, id DESC",
    "helpful": "helpfulness DESC, id DESC",
    "relevant": "helpfulness DESC, date_ms DESC, id DESC",
}

# The date's colons are quoted in the to_char pattern: printed the same, and pgbench (the
# benchmark) does not take ":MI" for one of its variables. No SQL comments inside statements:
# the benchmark joins a statement's lines into one.
_REVIEW_JSON = """json_build_object(
           'review_id', r.id, 'rating', r.rating, 'summary', r.summary, 'recommend', r.recommend,
           'response', r.response, 'body', r.body,
           'date', to_char(timestamp 'epoch' + r.date_ms * interval '1 millisecond',
                           'YYYY-MM-DD"T"HH24":"MI":"SS.MS"Z"'),
           'reviewer_name', r.reviewer_name, 'helpfulness', r.helpfulness,
           'photos', coalesce((SELECT json_agg(json_build_object('id', p.id, 'url', p.url) ORDER BY p.id)
                                 FROM review_photo p WHERE p.review_id = r.id), '[]'))"""


def _review_page(sort: str, order: str) -> Statement:
    # $1 = product_id, $2 = page, $3 = count, $4 = offset. The page is sorted by the index; the
    # aggregate sorts its (at most `count`) rows again because json_agg alone promises no order.
    return Statement(f"reviews_{sort}", f"""
        SELECT json_build_object('product', $1::integer::text, 'page', $2::integer, 'count', $3::integer,
                                 'results', coalesce(json_agg({_REVIEW_JSON} ORDER BY {order}), '[]'))::text
          FROM (SELECT * FROM review
                 WHERE product_id = $1::integer AND NOT reported
                 ORDER BY {order}
                 LIMIT $3::integer OFFSET $4::bigint) AS r
    """)


REVIEW_PAGES = {sort: _review_page(sort, order) for sort, order in SORT_ORDERS.items()}

# $1 = product_id. One primary-key lookup; no row for a product without a (non-reported)
# review or a characteristic.
META = Statement("reviews_meta", "SELECT meta FROM review_summary WHERE product_id = $1::integer")

# $1 = product_id: the body for a product without a summary row, built from its characteristics
# if it has any (none after a load; only rows added by other means). A separate statement so
# that the hot one above stays a bare lookup.
META_WITHOUT_SUMMARY = Statement("reviews_meta_without_summary", """
    SELECT review_meta_json($1::integer, '{0,0,0,0,0}', '{0,0}',
                            (SELECT characteristics FROM product_characteristics
                              WHERE product_id = $1::integer))
""")

# -- POST /reviews ------------------------------------------------------------------------------

# $1 = product_id, $2 = characteristic ids: how many of them belong to the product.
COUNT_PRODUCT_CHARACTERISTICS = Statement("reviews_count_product_characteristics", """
    SELECT count(*) FROM characteristic WHERE product_id = $1::integer AND id = ANY($2::integer[])
""")

# $1 = product_id, $2 = rating, $3 = recommend. Counts the new review and, first of all, locks
# the product's summary row (see the module docstring).
COUNT_NEW_REVIEW = Statement("reviews_count_new_review", """
    INSERT INTO review_summary AS s (product_id, ratings, recommended, meta)
    VALUES ($1::integer,
            ARRAY[($2::integer = 1)::integer, ($2 = 2)::integer, ($2 = 3)::integer,
                  ($2 = 4)::integer, ($2 = 5)::integer],
            ARRAY[(NOT $3::boolean)::integer, $3::integer],
            '')
    ON CONFLICT (product_id) DO UPDATE
       SET ratings[$2] = s.ratings[$2] + 1,
           recommended[$3::integer + 1] = s.recommended[$3::integer + 1] + 1
""")

# $1 = product_id, $2 = rating, $3 = summary, $4 = body, $5 = recommend, $6 = name, $7 = email,
# $8 = photo urls, $9 = characteristic ids, $10 = their values (ids distinct). Returns the new id.
INSERT_REVIEW = Statement("reviews_insert_review", """
    WITH new_review AS (
        INSERT INTO review (product_id, rating, date_ms, summary, body, recommend,
                            reviewer_name, reviewer_email)
        VALUES ($1::integer, $2::integer, (extract(epoch FROM now()) * 1000)::bigint, $3::text,
                $4::text, $5::boolean, $6::text, $7::text)
        RETURNING id
    ), photos AS (
        INSERT INTO review_photo (review_id, url)
        SELECT new_review.id, photo.url
          FROM new_review, unnest($8::text[]) WITH ORDINALITY AS photo (url, position)
         ORDER BY photo.position
    ), ratings AS (
        INSERT INTO characteristic_review (characteristic_id, review_id, value)
        SELECT rating.characteristic_id, new_review.id, rating.value
          FROM new_review, unnest($9::integer[], $10::integer[]) AS rating (characteristic_id, value)
    ), tallies AS (
        INSERT INTO characteristic_tally AS t (characteristic_id, rating_sum, rating_count)
        SELECT characteristic_id, value, 1
          FROM unnest($9::integer[], $10::integer[]) AS rating (characteristic_id, value)
        ON CONFLICT (characteristic_id) DO UPDATE
           SET rating_sum = t.rating_sum + excluded.rating_sum, rating_count = t.rating_count + 1
    )
    SELECT id FROM new_review
""")

# $1 = product_id: the product's meta document from its counts and characteristic tallies.
REBUILD_META = Statement("reviews_rebuild_meta", f"""
    WITH rebuilt AS (
        UPDATE review_summary s
           SET meta = review_meta_json(s.product_id, s.ratings, s.recommended,
                                       (SELECT characteristics FROM product_characteristics
                                         WHERE product_id = $1::integer))
         WHERE s.product_id = $1::integer
    )
    SELECT FROM {notify_changed("$1::integer")}
""")

# -- PUT /reviews/:id/helpful, /report --------------------------------------------------------

# $1 = review_id. One atomic increment; returns the review's product (whose views the balancer
# must refresh, http.changed), no row when the review does not exist.
MARK_HELPFUL = Statement("reviews_mark_helpful", f"""
    WITH marked AS (
        UPDATE review SET helpfulness = helpfulness + 1 WHERE id = $1::integer RETURNING product_id
    )
    SELECT marked.product_id FROM marked, {notify_changed("marked.product_id")}
""")

# $1 = review_id. Reports the review unless it was already reported (so a second report
# subtracts nothing) and takes it out of its product's counts; returns the product id, no row
# when nothing changed.
REPORT_REVIEW = Statement("reviews_report_review", """
    WITH reported AS (
        UPDATE review SET reported = true
         WHERE id = $1::integer AND NOT reported
        RETURNING product_id, rating, recommend
    )
    UPDATE review_summary s
       SET ratings[reported.rating] = s.ratings[reported.rating] - 1,
           recommended[reported.recommend::integer + 1] = s.recommended[reported.recommend::integer + 1] - 1
      FROM reported
     WHERE s.product_id = reported.product_id
    RETURNING s.product_id
""")

# $1 = review_id: takes a (just reported) review's ratings out of the characteristic tallies.
UNTALLY_REVIEW = Statement("reviews_untally_review", """
    UPDATE characteristic_tally t
       SET rating_sum = t.rating_sum - r.rating_sum, rating_count = t.rating_count - r.rating_count
      FROM (SELECT characteristic_id, sum(value) AS rating_sum, count(*) AS rating_count
              FROM characteristic_review WHERE review_id = $1::integer
             GROUP BY characteristic_id) AS r
     WHERE t.characteristic_id = r.characteristic_id
""")

# $1 = review_id
REVIEW_EXISTS = Statement("reviews_review_exists", """
    SELECT EXISTS (SELECT FROM review WHERE id = $1::integer)
""")
