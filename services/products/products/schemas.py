"""marshmallow schemas for the Products service's query parameters.

The per-product endpoints take only a path id, checked with atelier_common.validation.path_id
(no schema needed for one field)."""
from atelier_common.validation import PageSchema

PRODUCTS_PAGE = PageSchema()
