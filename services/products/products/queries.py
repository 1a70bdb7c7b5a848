"""All SQL of the Products service. Each statement returns the response body as JSON text.

The three per-product endpoints read a document built at load time (see sql/indexes.sql):
one primary-key lookup, no row comes back when the product does not exist."""
from atelier_common.db import Statement

# $1 = count, $2 = offset. Built per request: a page is a handful of rows of one table.
PRODUCTS_PAGE = Statement("products_page", """
    SELECT coalesce(json_agg(json_build_object(
               'id', id, 'name', name, 'slogan', slogan, 'description', description,
               'category', category, 'default_price', default_price::text) ORDER BY id), '[]')::text
      FROM (SELECT * FROM product ORDER BY id LIMIT $1 OFFSET $2) AS page
""")

PRODUCT = Statement("product_detail",
                    "SELECT detail FROM product_document WHERE product_id = $1")

PRODUCT_STYLES = Statement("product_styles",
                           "SELECT styles FROM product_document WHERE product_id = $1")

PRODUCT_RELATED = Statement("product_related",
                            "SELECT related FROM product_document WHERE product_id = $1")
