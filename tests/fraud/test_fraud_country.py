"""The country of a number: E.164 country codes, NANP area codes, shared codes."""

from __future__ import annotations

import pytest

from fraud.country import COUNTRY_CODES, NANP_AREA_CODES, country_code, country_of


@pytest.mark.parametrize(
    ("number", "country"),
    [
        pytest.param("12125551234", "US", id="us-new-york"),
        pytest.param("18005551234", "US", id="us-toll-free"),
        pytest.param("14165551234", "CA", id="ca-toronto"),
        pytest.param("16045551234", "CA", id="ca-vancouver"),
        pytest.param("18765551234", "JM", id="jamaica-876"),
        pytest.param("16585551234", "JM", id="jamaica-658"),
        pytest.param("12425551234", "BS", id="bahamas"),
        pytest.param("18095551234", "DO", id="dominican-809"),
        pytest.param("18495551234", "DO", id="dominican-849"),
        pytest.param("17875551234", "PR", id="puerto-rico"),
        pytest.param("16715551234", "GU", id="guam"),
        pytest.param("17215551234", "SX", id="sint-maarten"),
        pytest.param("74951234567", "RU", id="russia"),
        pytest.param("77011234567", "KZ", id="kazakhstan-mobile"),
        pytest.param("442071234567", "GB", id="uk"),
        pytest.param("441481123456", "GG", id="guernsey"),
        pytest.param("441534123456", "JE", id="jersey"),
        pytest.param("441624123456", "IM", id="isle-of-man"),
        pytest.param("33123456789", "FR", id="france"),
        pytest.param("4779123456", "SJ", id="svalbard"),
        pytest.param("4722123456", "NO", id="norway"),
        pytest.param("358181234567", "AX", id="aland"),
        pytest.param("358912345678", "FI", id="finland"),
        pytest.param("390669812345", "VA", id="vatican"),
        pytest.param("390612345678", "IT", id="rome"),
        pytest.param("262269123456", "YT", id="mayotte"),
        pytest.param("262262123456", "RE", id="reunion"),
        pytest.param("59997123456", "CW", id="curacao"),
        pytest.param("5997171234", "BQ", id="bonaire"),
        pytest.param("2521234567", "SO", id="somalia"),
        pytest.param("88216123456", "+882", id="international-networks"),
        pytest.param("8816123456789", "+881", id="satellite"),
        pytest.param("979123456789", "+979", id="international-premium"),
        pytest.param("3831234567", "XK", id="kosovo"),
        pytest.param("2101234567", "ZZ", id="spare-210"),
        pytest.param("", "ZZ", id="empty"),
    ],
)
def test_country_of(number: str, country: str) -> None:
    assert country_of(number) == country


def test_country_codes_are_prefix_free() -> None:
    # E.164 country codes never start one another: the longest match is the only match.
    codes = list(COUNTRY_CODES)
    clashes = [(a, b) for a in codes for b in codes if a != b and b.startswith(a)]
    assert clashes == []
    assert all(1 <= len(code) <= 3 and code.isdigit() for code in codes)


def test_nanp_area_codes_are_three_digits() -> None:
    assert all(len(area) == 3 and area.isdigit() for area in NANP_AREA_CODES)


@pytest.mark.parametrize(
    ("number", "code"),
    [
        pytest.param("18765551234", "1", id="nanp"),
        pytest.param("442071234567", "44", id="two-digits"),
        pytest.param("2521234567", "252", id="three-digits"),
        pytest.param("2101234567", "", id="spare"),
    ],
)
def test_country_code(number: str, code: str) -> None:
    assert country_code(number) == code
