"""Persian text normalisation: the one place where names are made comparable.

Every comparison of place names, headers or vocabulary values goes through
:func:`norm` (readable, keeps spaces) or :func:`key` (matching key, no spaces).
Latin-script names go through :func:`latin_key`. This module does not know
about places; it only folds spelling variants.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

# Arabic and variant letters folded to the Persian forms.
_LETTERS = {
    "ي": "ی", "ى": "ی", "ئ": "ی", "ې": "ی", "ۍ": "ی", "ێ": "ی",
    "ك": "ک", "ڪ": "ک", "ػ": "ک", "ڭ": "گ",
    "ة": "ه", "ۀ": "ه", "ە": "ه", "ھ": "ه", "ہ": "ه", "ۂ": "ه", "ۃ": "ه",
    "أ": "ا", "إ": "ا", "ٱ": "ا", "ٲ": "ا", "ٳ": "ا",
    "ؤ": "و", "ۋ": "و", "ۇ": "و",
}
# Both Persian (۰-۹) and Arabic-Indic (٠-٩) digits to ASCII.
_DIGITS = {chr(0x06F0 + i): str(i) for i in range(10)} | {chr(0x0660 + i): str(i) for i in range(10)}
_PUNCT = {"،": ",", "؛": ";", "؟": "?", "٫": ".", "٬": ",", "«": '"', "»": '"', "ـ": ""}
_TABLE = str.maketrans(_LETTERS | _DIGITS | _PUNCT)
_DIGIT_TABLE = str.maketrans(_DIGITS)
_FA_DIGIT_TABLE = str.maketrans({str(i): chr(0x06F0 + i) for i in range(10)})

# Harakat, tanwin, shadda, superscript alef, Quranic marks; hamza above/below as marks.
_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]")
# ZWNJ, ZWJ, bidi controls, BOM, soft hyphen and other invisible format characters.
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_SPACES = re.compile(r"\s+")

# Administrative and place-type prefixes, longest first so "روستای" wins over "روستا".
ADMIN_PREFIXES = (
    "شهرستان", "استان", "بخش", "دهستان", "روستای", "روستا", "شهر", "قریه", "ده",
    "آبادی", "ابادی",
)
_PREFIX_RE = re.compile(r"^(?:" + "|".join(ADMIN_PREFIXES) + r")\s+")

# Persian-script words for prefixes after relaxed folding (آ -> ا).
_RELAX = str.maketrans({"آ": "ا", "ء": ""})


def to_ascii_digits(text: str) -> str:
    """Persian and Arabic-Indic digits to ASCII, everything else unchanged."""
    return text.translate(_DIGIT_TABLE)


def to_persian_digits(value: object) -> str:
    """ASCII digits to Persian digits, for display."""
    return str(value).translate(_FA_DIGIT_TABLE)


def norm(text: object) -> str:
    """Readable normal form: Persian letters, ASCII digits, no marks or ZWNJ, single spaces.

    ZWNJ becomes a space, so "می‌رود" and "می رود" compare equal after :func:`key`.
    """
    if text is None:
        return ""
    s = unicodedata.normalize("NFC", str(text))
    s = s.translate(_TABLE)
    s = _MARKS.sub("", s)
    s = s.replace("\u200c", " ")
    s = _INVISIBLE.sub("", s)
    # Removing marks can leave combining characters out of canonical order: normalise again.
    return unicodedata.normalize("NFC", " ".join(s.split()))


def strip_prefix(text: str) -> str:
    """Remove leading administrative prefixes (استان، شهرستان، بخش، دهستان، روستای، شهر ...)."""
    s = norm(text)
    while True:
        t = _PREFIX_RE.sub("", s, count=1)
        if t == s or not t:
            return s
        s = t


def key(text: object, *, prefixes: bool = True) -> str:
    """Matching key: normalised, prefixes stripped, آ->ا, hamza dropped, no spaces, lower case."""
    s = strip_prefix(norm(text)) if prefixes else norm(text)
    s = s.translate(_RELAX)
    return unicodedata.normalize("NFC", s.replace(" ", "").lower())


def fold(normalised: str) -> str:
    """:func:`key` without prefixes for text that already went through :func:`norm` (a fast path)."""
    return unicodedata.normalize("NFC", normalised.translate(_RELAX).replace(" ", "").lower())


_WORD_BREAK = re.compile(r"[\s,;:/\\\-–—_()\[\]{}\"'.]+")


def tokens(text: object) -> list[str]:
    """Words of a text, normalised (:func:`norm`), splitting on spaces and punctuation."""
    return words(norm(text))


def words(normalised: str) -> list[str]:
    """:func:`tokens` of a text that already went through :func:`norm`."""
    return [t for t in _WORD_BREAK.split(normalised) if t]


# ---- Latin script (English transliterations) --------------------------------

# Folding of common alternative transliterations so "Esfahan"/"Isfahan"/"Eşfahān",
# "Ghazvin"/"Qazvin", "Kermanshah"/"Kermânshâh" give the same key.
_LATIN_RULES = (
    (re.compile(r"[’‘`'ʼʻ]"), ""),
    (re.compile(r"\b(county|province|city|village|shahrestan|ostan)\b"), ""),
    (re.compile(r"-e-|-ye-|-e\b|-ye\b"), ""),
    (re.compile(r"[^a-z0-9]"), ""),
    (re.compile(r"ou|oo"), "u"),
    (re.compile(r"ee"), "i"),
    (re.compile(r"gh"), "q"),
    (re.compile(r"w"), "v"),
    (re.compile(r"ei"), "ey"),
    (re.compile(r"^i(?=[sz])"), "e"),
    (re.compile(r"(.)\1+"), r"\1"),
)


def latin_key(text: object) -> str:
    """Matching key for a Latin-script name: accents and apostrophes removed, spellings folded."""
    if text is None:
        return ""
    s = unicodedata.normalize("NFKD", str(text))
    s = "".join(c for c in s if not unicodedata.combining(c)).lower()
    for pattern, repl in _LATIN_RULES:
        s = pattern.sub(repl, s)
    return s


def is_latin(text: str) -> bool:
    """True when the text has Latin letters and no Arabic-script letters."""
    has_latin = any("a" <= c.lower() <= "z" for c in text)
    has_arabic = any("\u0600" <= c <= "\u06ff" for c in text)
    return has_latin and not has_arabic


def few_distinct(values) -> bool:
    """True for a column (a pandas Series) with at most one distinct value in 20 rows (or 50 in all): held as
    categories, a code per row and each text once, it is several times smaller than a text per row."""
    return values.nunique() <= max(len(values) // 20, 50)


def shared_texts(values: Iterable, pool: dict[str, str]) -> list:
    """``values`` as a list in which equal texts are one object, the one ``pool`` holds: a column of repeated
    names costs a pointer a row rather than a string a row. Other values stay as they are."""
    return [pool.setdefault(v, v) if isinstance(v, str) else v for v in values]


class TextColumn:
    """A column of texts held as Arrow text and read in place: ``column[i]`` is the i-th text, or None.

    For tables kept for the life of a process (the gazetteer's names, codes and ids; the place labels):
    a Python string per row costs 60-90 bytes more than its UTF-8 bytes; reading one costs 0.5 µs."""

    def __init__(self, values: pd.Series | pa.Array):
        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            arrow = values
        elif isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
            arrow = pa.array(values.array)          # the frame's own Arrow text, not a copy
        else:                                       # categories or objects: made Arrow text once
            arrow = pa.array(values.astype(object).where(values.notna(), None).tolist(), type=pa.string())
        if isinstance(arrow, pa.ChunkedArray):      # combine_chunks copies even a single chunk (9 MB here)
            arrow = arrow.chunk(0) if arrow.num_chunks == 1 else arrow.combine_chunks()
        self._values = arrow

    def __len__(self) -> int:
        return len(self._values)

    def __getitem__(self, i) -> str | None:
        return self._values[int(i)].as_py()

    def __iter__(self) -> Iterator[str | None]:
        return iter(self._values.to_pylist())

    def take(self, rows) -> list[str | None]:
        """``[column[i] for i in rows]`` at once."""
        return list(self.subset(rows))

    def subset(self, rows) -> TextColumn:
        """The texts of ``rows``, in that order, as a column of their own."""
        return TextColumn(self._values.take(pa.array(np.asarray(rows, np.int64))))
