"""marshmallow fields with the contract's typing rules, and the shared query/path helpers.

- integers: a JSON integer (5.0 included) or a string of decimal digits ("5" is 5); 1.5, "1.5",
  "abc", true are rejected; ids, page and count range from 1 to 2147483647.
- booleans: true/false or "true"/"false" only.
- text: a JSON string only; lengths count code points. PostgreSQL cannot store a NUL character
  or a lone surrogate, so text holding one is bad input (422), not a server error.
"""
import re

from flask import current_app
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

MAX_INT = 2147483647
_DIGITS = re.compile(r"[0-9]+")
_RANGE_MESSAGE = "Must be an integer from {min} to {max}."


class WholeNumber(fields.Field):
    """An integer from `minimum` to `maximum`, given as a JSON integer or a digit string."""

    def __init__(self, minimum=1, maximum=MAX_INT, **kwargs):
        super().__init__(**kwargs)
        self.minimum = minimum
        self.maximum = maximum

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            value = None
        elif isinstance(value, str) and _DIGITS.fullmatch(value) and len(value) <= 12:
            value = int(value)
        elif isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON has one number type: 5.0 is the integer 5 (as in JSON Schema)
        if isinstance(value, int) and self.minimum <= value <= self.maximum:
            return value
        raise ValidationError(_RANGE_MESSAGE.format(min=self.minimum, max=self.maximum))


class Id(WholeNumber):
    def __init__(self, **kwargs):
        super().__init__(1, MAX_INT, **kwargs)


class StrictBoolean(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if value is True or value == "true":
            return True
        if value is False or value == "false":
            return False
        raise ValidationError("Must be true or false.")


def storable(value: str) -> bool:
    """Text PostgreSQL can store: no NUL character, no lone surrogate (valid UTF-8)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Text(fields.Field):
    def __init__(self, min_length=1, max_length=1000, **kwargs):
        super().__init__(**kwargs)
        self.min_length = min_length
        self.max_length = max_length

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("Must be a string.")
        if not storable(value):
            raise ValidationError("Must not contain NUL characters or lone surrogates.")
        if not self.min_length <= len(value) <= self.max_length:
            raise ValidationError(
                f"Must be from {self.min_length} to {self.max_length} characters long.")
        return value


# Characters that never belong in an e-mail address or a URL: controls, spaces (Unicode ones
# included) and NUL. Spelled out rather than `\s`, whose meaning differs between regex engines:
# the OpenAPI descriptions repeat this class, and API fuzzers generate from it.
_BLANK = "\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"


class Email(Text):
    """1–60 characters shaped like local@domain.tld (the front-end's own rule)."""
    SHAPE = re.compile(f"[^@{_BLANK}]+@[^@{_BLANK}]+\\.[^@{_BLANK}]+")

    def __init__(self, **kwargs):
        super().__init__(1, 60, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if not self.SHAPE.fullmatch(value):
            raise ValidationError("Must be an e-mail address.")
        return value


class PhotoUrls(fields.Field):
    """At most `maximum` http(s) URLs; absent means none."""
    SHAPE = re.compile(f"https?://[^{_BLANK}]+", re.IGNORECASE)

    def __init__(self, maximum=5, **kwargs):
        kwargs.setdefault("load_default", list)
        super().__init__(**kwargs)
        self.maximum = maximum

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise ValidationError("Must be a list of URLs.")
        if len(value) > self.maximum:
            raise ValidationError(f"At most {self.maximum} photos.")
        for url in value:
            if (not isinstance(url, str) or len(url) > 2048 or not self.SHAPE.fullmatch(url)
                    or not storable(url)):
                raise ValidationError("Each photo must be an http(s) URL.")
        return value


class ContractSchema(Schema):
    """Unknown keys are ignored (clients send extra query parameters)."""

    class Meta:
        unknown = EXCLUDE


class PageSchema(ContractSchema):
    """page ≥ 1 (default 1) and count ≥ 1 (default 5), count clamped to the configured maximum."""
    page = WholeNumber(load_default=1)
    count = WholeNumber(load_default=5)

    @post_load
    def clamp_count(self, data, **kwargs):
        data["count"] = min(data["count"], current_app.config["SETTINGS"].max_page_count)
        data["offset"] = (data["page"] - 1) * data["count"]
        return data


_PATH_ID = Id()


def path_id(name: str, raw: str) -> int:
    """A path segment that must be an id (the same rule as an id in the query string); anything
    else is the contract's 422 naming the field."""
    try:
        return _PATH_ID.deserialize(raw)
    except ValidationError as error:
        raise ValidationError({name: error.messages}) from None


def load_query(schema: Schema, args) -> dict:
    """Validate query parameters (a MultiDict: the first value of each key counts)."""
    return schema.load(args.to_dict(flat=True))


def load_json_body(schema: Schema, req) -> dict:
    """The body of a POST: JSON only (400 otherwise), then validated by `schema` (422)."""
    from .errors import bad_request

    mimetype = req.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise bad_request("Content-Type must be application/json.")
    try:
        body = req.get_json(silent=True)
    except RecursionError:  # json's C scanner gives up on nesting ~1,000 levels deep
        raise bad_request("The body is nested too deeply.") from None
    if body is None:
        raise bad_request("The body is not valid JSON.")
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object.")
    return schema.load(body)


__all__ = ["WholeNumber", "Id", "StrictBoolean", "Text", "Email", "PhotoUrls", "ContractSchema",
           "PageSchema", "path_id", "load_query", "load_json_body", "validate", "fields"]
