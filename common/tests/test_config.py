import pytest

from atelier_common.config import ConfigError, load_settings


def test_missing_database_url_fails_loudly_naming_the_variable():
    with pytest.raises(ConfigError, match="PRODUCTS_DATABASE_URL"):
        load_settings("products", environ={})


def test_settings_come_from_the_environment():
    settings = load_settings("qa", environ={
        "QA_DATABASE_URL": "postgresql://u@h/qa", "DB_POOL_MAX": "3", "DB_POOL_WAIT_SECONDS": "0.5",
        "MAX_PAGE_COUNT": "50", "CORS_ALLOW_ORIGIN": "https://shop.example"})
    assert (settings.database_url, settings.pool_max, settings.pool_wait_seconds) == ("postgresql://u@h/qa", 3, 0.5)
    assert (settings.max_page_count, settings.cors_allow_origin) == (50, "https://shop.example")


@pytest.mark.parametrize("value", ["many", "0", "-2"])
def test_unreadable_numbers_fail_loudly(value):
    with pytest.raises(ConfigError, match="DB_POOL_MAX"):
        load_settings("reviews", environ={"REVIEWS_DATABASE_URL": "postgresql://x", "DB_POOL_MAX": value})


def test_metrics_switch_is_0_or_1():
    url = {"REVIEWS_DATABASE_URL": "postgresql://x"}
    assert load_settings("reviews", environ=url).metrics_enabled is True
    assert load_settings("reviews", environ={**url, "METRICS": "0"}).metrics_enabled is False
    with pytest.raises(ConfigError, match="METRICS"):
        load_settings("reviews", environ={**url, "METRICS": "off"})
