"""marshmallow schemas for the Ratings & Reviews service's query parameters and bodies."""
from marshmallow import ValidationError

from atelier_common.validation import (ContractSchema, Email, Id, PageSchema, PhotoUrls,
                                       StrictBoolean, Text, WholeNumber, fields)


class SortOrder(fields.Field):
    """One of the three list orders, under its contract name or the spelling front-ends send."""
    ALIASES = {"newest": "newest", "newness": "newest",
               "helpful": "helpful", "helpfulness": "helpful",
               "relevant": "relevant", "relevance": "relevant"}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and value in self.ALIASES:
            return self.ALIASES[value]
        raise ValidationError("Must be one of newest, helpful, relevant.")


class CharacteristicRatings(fields.Field):
    """{"<characteristic id>": <rating 1–5>, …} → {id: rating}; absent means none.

    Whether the ids belong to the product is checked against the database by the view."""
    _ID = Id()
    _RATING = WholeNumber(1, 5)

    def __init__(self, **kwargs):
        kwargs.setdefault("load_default", dict)
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("Must be an object mapping characteristic ids to ratings.")
        ratings, problems = {}, []
        for key, rating in value.items():
            try:
                ident = self._ID.deserialize(key)
            except ValidationError:
                problems.append(f"{key!r} is not a characteristic id.")
                continue
            if ident in ratings:
                problems.append(f"Characteristic {ident} is given twice.")
            try:
                ratings[ident] = self._RATING.deserialize(rating)
            except ValidationError:
                problems.append(f"The rating of characteristic {ident} must be an integer from 1 to 5.")
        if problems:
            raise ValidationError(problems)
        return ratings


class ReviewsPageQuery(PageSchema):
    product_id = Id(required=True)
    sort = SortOrder(load_default="relevant")


class MetaQuery(ContractSchema):
    product_id = Id(required=True)


class NewReview(ContractSchema):
    product_id = Id(required=True)
    rating = WholeNumber(1, 5, required=True)
    summary = Text(0, 60, required=True)
    body = Text(50, 1000, required=True)
    recommend = StrictBoolean(required=True)
    name = Text(1, 60, required=True)
    email = Email(required=True)
    photos = PhotoUrls()
    characteristics = CharacteristicRatings()


REVIEWS_PAGE = ReviewsPageQuery()
META = MetaQuery()
NEW_REVIEW = NewReview()
