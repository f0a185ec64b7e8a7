"""The country of an E.164 number: the assigned country codes and the NANP area codes.

Sources, as used here:

- ITU-T Recommendation E.164 and its complement, *List of ITU-T Recommendation E.164 assigned
  country codes* (ITU Operational Bulletin annex): the 1-, 2- and 3-digit country codes,
  including the codes shared by several countries and the non-geographic codes (satellite,
  international networks, freephone, premium rate).
- NANPA, *Area codes by NANP country* (nanpanumbering / nanpa.com): country code 1 is shared by
  the United States, Canada and 18 Caribbean and Pacific countries and territories; the area
  code (the three digits after the 1) tells them apart. Every area code not listed below is the
  United States (including the NANP non-geographic codes 8xx toll-free and 900).
- The national numbering plans of the few countries that share a code: +7 Kazakhstan (76, 77),
  +47 Svalbard (79), +358 Åland (18), +39 Vatican (06 698), +44 Guernsey, Jersey and the Isle of
  Man (landline areas 1481, 1534, 1624), +262 Mayotte (269, 639), +599 Caribbean Netherlands
  (3, 4, 7) and Curaçao (9), +672 Norfolk Island (3) and Australian Antarctic Territory (1).

Countries are ISO 3166-1 alpha-2 codes (plus ``XK`` Kosovo and ``AC`` Ascension, as the
numbering world uses them). Non-geographic services have no country: they are named by their
code with a ``+`` (``+881`` satellite, ``+882``/``+883`` international networks, ``+979``
international premium rate...), which keeps them apart in per-country counters and makes them
easy to list as high-risk. A number whose code is spare (unassigned) is ``ZZ``.
"""

from __future__ import annotations

UNKNOWN = "ZZ"
"""The country of a number whose country code is not assigned."""

COUNTRY_CODES: dict[str, str] = {
    # Zone 1 (NANP) and zone 7: resolved further below.
    "1": "US",
    "7": "RU",
    # Zone 2: Africa and a few territories.
    "20": "EG",
    "211": "SS",
    "212": "MA",
    "213": "DZ",
    "216": "TN",
    "218": "LY",
    "220": "GM",
    "221": "SN",
    "222": "MR",
    "223": "ML",
    "224": "GN",
    "225": "CI",
    "226": "BF",
    "227": "NE",
    "228": "TG",
    "229": "BJ",
    "230": "MU",
    "231": "LR",
    "232": "SL",
    "233": "GH",
    "234": "NG",
    "235": "TD",
    "236": "CF",
    "237": "CM",
    "238": "CV",
    "239": "ST",
    "240": "GQ",
    "241": "GA",
    "242": "CG",
    "243": "CD",
    "244": "AO",
    "245": "GW",
    "246": "IO",
    "247": "AC",
    "248": "SC",
    "249": "SD",
    "250": "RW",
    "251": "ET",
    "252": "SO",
    "253": "DJ",
    "254": "KE",
    "255": "TZ",
    "256": "UG",
    "257": "BI",
    "258": "MZ",
    "260": "ZM",
    "261": "MG",
    "262": "RE",
    "263": "ZW",
    "264": "NA",
    "265": "MW",
    "266": "LS",
    "267": "BW",
    "268": "SZ",
    "269": "KM",
    "27": "ZA",
    "290": "SH",
    "291": "ER",
    "297": "AW",
    "298": "FO",
    "299": "GL",
    # Zones 3 and 4: Europe.
    "30": "GR",
    "31": "NL",
    "32": "BE",
    "33": "FR",
    "34": "ES",
    "350": "GI",
    "351": "PT",
    "352": "LU",
    "353": "IE",
    "354": "IS",
    "355": "AL",
    "356": "MT",
    "357": "CY",
    "358": "FI",
    "359": "BG",
    "36": "HU",
    "370": "LT",
    "371": "LV",
    "372": "EE",
    "373": "MD",
    "374": "AM",
    "375": "BY",
    "376": "AD",
    "377": "MC",
    "378": "SM",
    "379": "VA",
    "380": "UA",
    "381": "RS",
    "382": "ME",
    "383": "XK",
    "385": "HR",
    "386": "SI",
    "387": "BA",
    "389": "MK",
    "39": "IT",
    "40": "RO",
    "41": "CH",
    "420": "CZ",
    "421": "SK",
    "423": "LI",
    "43": "AT",
    "44": "GB",
    "45": "DK",
    "46": "SE",
    "47": "NO",
    "48": "PL",
    "49": "DE",
    # Zone 5: South and Central America.
    "500": "FK",
    "501": "BZ",
    "502": "GT",
    "503": "SV",
    "504": "HN",
    "505": "NI",
    "506": "CR",
    "507": "PA",
    "508": "PM",
    "509": "HT",
    "51": "PE",
    "52": "MX",
    "53": "CU",
    "54": "AR",
    "55": "BR",
    "56": "CL",
    "57": "CO",
    "58": "VE",
    "590": "GP",
    "591": "BO",
    "592": "GY",
    "593": "EC",
    "594": "GF",
    "595": "PY",
    "596": "MQ",
    "597": "SR",
    "598": "UY",
    "599": "CW",
    # Zone 6: South-East Asia and Oceania.
    "60": "MY",
    "61": "AU",
    "62": "ID",
    "63": "PH",
    "64": "NZ",
    "65": "SG",
    "66": "TH",
    "670": "TL",
    "672": "NF",
    "673": "BN",
    "674": "NR",
    "675": "PG",
    "676": "TO",
    "677": "SB",
    "678": "VU",
    "679": "FJ",
    "680": "PW",
    "681": "WF",
    "682": "CK",
    "683": "NU",
    "685": "WS",
    "686": "KI",
    "687": "NC",
    "688": "TV",
    "689": "PF",
    "690": "TK",
    "691": "FM",
    "692": "MH",
    # Zone 8: East Asia and the non-geographic services.
    "800": "+800",
    "808": "+808",
    "81": "JP",
    "82": "KR",
    "84": "VN",
    "850": "KP",
    "852": "HK",
    "853": "MO",
    "855": "KH",
    "856": "LA",
    "86": "CN",
    "870": "+870",
    "878": "+878",
    "880": "BD",
    "881": "+881",
    "882": "+882",
    "883": "+883",
    "886": "TW",
    "888": "+888",
    # Zone 9: West, Central and South Asia, Middle East.
    "90": "TR",
    "91": "IN",
    "92": "PK",
    "93": "AF",
    "94": "LK",
    "95": "MM",
    "960": "MV",
    "961": "LB",
    "962": "JO",
    "963": "SY",
    "964": "IQ",
    "965": "KW",
    "966": "SA",
    "967": "YE",
    "968": "OM",
    "970": "PS",
    "971": "AE",
    "972": "IL",
    "973": "BH",
    "974": "QA",
    "975": "BT",
    "976": "MN",
    "977": "NP",
    "979": "+979",
    "98": "IR",
    "991": "+991",
    "992": "TJ",
    "993": "TM",
    "994": "AZ",
    "995": "GE",
    "996": "KG",
    "998": "UZ",
}
"""ITU-T E.164 assigned country codes -> country (or ``+code`` for non-geographic services)."""

NANP_AREA_CODES: dict[str, str] = {
    # Canada.
    **dict.fromkeys(
        [
            "204",
            "226",
            "236",
            "249",
            "250",
            "257",
            "263",
            "289",
            "306",
            "343",
            "354",
            "365",
            "367",
            "368",
            "382",
            "403",
            "416",
            "418",
            "428",
            "431",
            "437",
            "438",
            "450",
            "468",
            "474",
            "506",
            "514",
            "519",
            "548",
            "579",
            "581",
            "584",
            "587",
            "600",
            "604",
            "613",
            "639",
            "647",
            "672",
            "683",
            "705",
            "709",
            "742",
            "753",
            "778",
            "780",
            "782",
            "807",
            "819",
            "825",
            "867",
            "873",
            "879",
            "902",
            "905",
            "942",
        ],
        "CA",
    ),
    # The Caribbean and the Pacific.
    "242": "BS",
    "246": "BB",
    "264": "AI",
    "268": "AG",
    "284": "VG",
    "340": "VI",
    "345": "KY",
    "441": "BM",
    "473": "GD",
    "649": "TC",
    "658": "JM",
    "664": "MS",
    "670": "MP",
    "671": "GU",
    "684": "AS",
    "721": "SX",
    "758": "LC",
    "767": "DM",
    "784": "VC",
    "787": "PR",
    "809": "DO",
    "829": "DO",
    "849": "DO",
    "868": "TT",
    "869": "KN",
    "876": "JM",
    "939": "PR",
}
"""NANPA: area codes of country code 1 that are not the United States."""

SHARED_CODE_RANGES: dict[str, str] = {
    "76": "KZ",
    "77": "KZ",
    "4779": "SJ",
    "35818": "AX",
    "3906698": "VA",
    "441481": "GG",
    "441534": "JE",
    "441624": "IM",
    "262269": "YT",
    "262639": "YT",
    "5993": "BQ",
    "5994": "BQ",
    "5997": "BQ",
    "5999": "CW",
    "6721": "AQ",
    "6723": "NF",
}
"""Ranges inside a shared country code that belong to another country or territory."""


def _build() -> tuple[dict[str, str], tuple[int, ...]]:
    table = dict(COUNTRY_CODES)
    table.update({"1" + area: country for area, country in NANP_AREA_CODES.items()})
    table.update(SHARED_CODE_RANGES)
    return table, tuple(sorted({len(k) for k in table}, reverse=True))


_TABLE, _LENGTHS = _build()


def country_of(number: str) -> str:
    """The country of E.164 digits (no ``+``): ISO alpha-2, ``+code``, or ``ZZ``."""
    size = len(number)
    for length in _LENGTHS:
        if length <= size:
            found = _TABLE.get(number[:length])
            if found is not None:
                return found
    return UNKNOWN


def country_code(number: str) -> str:
    """The E.164 country code (1 to 3 digits) that starts ``number``, or ``""``."""
    for length in (1, 2, 3):
        if number[:length] in COUNTRY_CODES:
            return number[:length]
    return ""


__all__ = ["COUNTRY_CODES", "NANP_AREA_CODES", "SHARED_CODE_RANGES", "country_code", "country_of"]
