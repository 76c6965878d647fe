"""Personal data inside free text: phone numbers and national-ID-like digit runs, masked.

:func:`mask_numbers` hides them inside a name or an address (the chief executive's mobile
number typed into the address), so they never reach a public output; the registry's own
``phone`` column and its unknown columns are never public at all (``dataset.PUBLIC_COLUMNS``).

Not here: which columns are public (``dataset.py``), which headers are personal
(``registry.py``), how files holding personal data are written (``files.py``).
"""

from __future__ import annotations

import re

HIDDEN = "[شماره پنهان]"

# A run of 8 or more digits (Persian, Arabic or ASCII), single spaces, dots, dashes or brackets
# allowed between them, with an optional leading + (e.g. +98 912 345 6789, ۰۹۱۲-۳۴۵-۶۷۸۹,
# (021) 8877 6655, a 10-digit national ID or postcode). Shorter numbers (house numbers, plaques,
# years, registration numbers) and dates (1402-05-12) stay.
_DIGIT = "[0-9\u06f0-\u06f9\u0660-\u0669]"
_RUN = re.compile(rf"\+?\(?{_DIGIT}(?:[ .\-()]?{_DIGIT}){{7,}}\)?")
_DATE = re.compile(rf"{_DIGIT}{{4}}([.\-]){_DIGIT}{{1,2}}\1{_DIGIT}{{1,2}}")


def mask_numbers(text):
    """``text`` with phone-like and ID-like digit runs replaced by a marker; other values as they are."""
    if not isinstance(text, str) or len(text) < 8:
        return text
    return _RUN.sub(_hide, text)


def _hide(m: re.Match) -> str:
    return m.group(0) if _DATE.fullmatch(m.group(0)) else HIDDEN
