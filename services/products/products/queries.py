"""All SQL of the Products service. Each statement returns the response body as JSON text, or
no row when the product does not exist (the view answers 404).

/products/:id and /related read a document built at load time (sql/indexes.sql): one
primary-key lookup. /styles and the /products page are assembled per request."""
from atelier_common.db import Statement

# $1 = count, $2 = offset.
PRODUCTS_PAGE = Statement("products_page", """
    SELECT coalesce(json_agg(json_build_object(
               'id', id, 'name', name, 'slogan', slogan, 'description', description,
               'category', category, 'default_price', default_price::text) ORDER BY id), '[]')::text
      FROM (SELECT * FROM product ORDER BY id LIMIT $1 OFFSET $2) AS page
""")

PRODUCT = Statement("products_product",
                    "SELECT detail FROM product_document WHERE product_id = $1")

PRODUCT_RELATED = Statement("products_product_related",
                            "SELECT related FROM product_document WHERE product_id = $1")

# Styles, photos and skus in id order, each from an index on (parent id, id); the placeholders
# are the original API's, which real front-ends index without a guard.
PRODUCT_STYLES = Statement("products_product_styles", """
    SELECT json_build_object('product_id', p.id::text, 'results', coalesce(
               (SELECT json_agg(json_build_object(
                           'style_id', s.id, 'name', s.name,
                           'original_price', s.original_price::text,
                           'sale_price', s.sale_price::text,
                           'default?', s.default_style,
                           'photos', coalesce(
                               (SELECT json_agg(json_build_object('thumbnail_url', ph.thumbnail_url,
                                                                  'url', ph.url) ORDER BY ph.id)
                                  FROM photo ph WHERE ph.style_id = s.id),
                               '[{"thumbnail_url": null, "url": null}]'),
                           'skus', coalesce(
                               (SELECT json_object_agg(k.id, json_build_object('quantity', k.quantity,
                                                                               'size', k.size) ORDER BY k.id)
                                  FROM sku k WHERE k.style_id = s.id),
                               '{"null": {"quantity": null, "size": null}}'))
                       ORDER BY s.id)
                  FROM style s WHERE s.product_id = p.id),
               '[]'))::text
      FROM product p
     WHERE p.id = $1
""")
