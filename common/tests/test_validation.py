import pytest
from marshmallow import ValidationError

from atelier_common.validation import Email, PhotoUrls, StrictBoolean, Text, WholeNumber, path_id


@pytest.mark.parametrize("value, expected", [(5, 5), ("5", 5), ("2147483647", 2147483647), (1, 1)])
def test_whole_numbers_take_integers_and_digit_strings(value, expected):
    assert WholeNumber().deserialize(value) == expected


@pytest.mark.parametrize("value", [0, -1, 1.5, "1.5", "abc", True, False, "", " 5", "2147483648",
                                   2147483648, None, [], "٣"])
def test_whole_numbers_reject_everything_else(value):
    with pytest.raises(ValidationError):
        WholeNumber().deserialize(value)


@pytest.mark.parametrize("value, expected", [(True, True), ("true", True), (False, False), ("false", False)])
def test_booleans(value, expected):
    assert StrictBoolean().deserialize(value) is expected


@pytest.mark.parametrize("value", ["yes", 1, 0, "True", None])
def test_booleans_reject_lookalikes(value):
    with pytest.raises(ValidationError):
        StrictBoolean().deserialize(value)


def test_text_counts_code_points_and_wants_a_string():
    assert Text(1, 3).deserialize("é😀x") == "é😀x"
    for bad in ("", "abcd", 123, None):
        with pytest.raises(ValidationError):
            Text(1, 3).deserialize(bad)


@pytest.mark.parametrize("value", ["a\x00b", "a\ud800b"])
def test_text_postgresql_cannot_store_is_bad_input(value):
    with pytest.raises(ValidationError):
        Text(0, 10).deserialize(value)
    with pytest.raises(ValidationError):
        PhotoUrls().deserialize([f"https://img.example/{value}"])


@pytest.mark.parametrize("value", ["a@b.co", "first.last@gmail.com"])
def test_emails(value):
    assert Email().deserialize(value) == value


@pytest.mark.parametrize("value", ["plain", "a@b", "a b@c.d", "x" * 55 + "@b.com", 5])
def test_bad_emails(value):
    with pytest.raises(ValidationError):
        Email().deserialize(value)


def test_photo_urls():
    assert PhotoUrls().deserialize(["https://a.b/c.jpg", "http://x.y/z"]) == ["https://a.b/c.jpg", "http://x.y/z"]
    for bad in (["ftp://a.b/c"], ["not a url"], [5], ["https://a.b/"] * 6, "https://a.b/c"):
        with pytest.raises(ValidationError):
            PhotoUrls().deserialize(bad)


def test_path_ids_name_the_field():
    assert path_id("product_id", "42") == 42
    for bad in ("abc", "0", "-1", "1.5", "2147483648", "99999999999999999999"):
        with pytest.raises(ValidationError) as caught:
            path_id("product_id", bad)
        assert list(caught.value.messages) == ["product_id"]
