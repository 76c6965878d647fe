"""The Persian normaliser: the one place where spellings are folded."""

from hypothesis import given
from hypothesis import strategies as st

from coopgis.text import key, latin_key, norm, strip_prefix, to_ascii_digits, to_persian_digits, tokens


def test_arabic_letter_forms_fold_to_persian():
    assert norm("كرمانشاه") == "کرمانشاه"
    assert norm("علي آباد") == "علی آباد"
    assert key("قلعة") == key("قلعه") == key("قلعۀ")


def test_zwnj_spacing_diacritics_tatweel():
    assert key("میان‌جلگه") == key("میان جلگه") == key("میانجلگه")
    assert norm("شـــیراز") == "شیراز"
    assert norm("مُحَمَّد") == "محمد"
    assert norm("  آباده   \u200f طشک ") == "آباده طشک"


def test_digits_of_all_scripts():
    assert to_ascii_digits("۱۴۰۲/۰۵/۱۲") == "1402/05/12"
    assert to_ascii_digits("١٢٣") == "123"
    assert norm("پلاک ۱۲") == "پلاک 12"
    assert to_persian_digits(1402) == "۱۴۰۲"


def test_administrative_prefixes_stripped():
    assert strip_prefix("استان فارس") == "فارس"
    assert strip_prefix("شهرستان مرودشت") == "مرودشت"
    assert strip_prefix("روستاي کناره") == "کناره"
    assert key("دهستان  کناره") == key("کناره")
    # A name that only looks like a prefix is left alone.
    assert key("شهرکرد") == "شهرکرد"
    assert key("استان") == "استان"


def test_latin_transliterations_fold():
    assert latin_key("Eşfahān") == latin_key("Isfahan") == latin_key("Esfahan")
    assert latin_key("Ghazvin") == latin_key("Qazvīn")
    assert latin_key("Kermānshāh Province") == latin_key("kermanshah")
    assert latin_key("Boneh-ye ‘Alvān") == latin_key("Boneh Alvan")


def test_tokens_split_on_persian_punctuation():
    assert tokens("فارس-مرودشت، روستاي کناره") == ["فارس", "مرودشت", "روستای", "کناره"]


@given(st.text())
def test_normalising_twice_equals_once(s):
    assert norm(norm(s)) == norm(s)
    assert key(key(s)) == key(s)


@given(st.text())
def test_no_crash_on_any_unicode(s):
    key(s)
    latin_key(s)
    tokens(s)


@given(st.text())
def test_fold_of_normalised_text_equals_key_without_prefixes(s):
    from coopgis.text import fold

    assert fold(norm(s)) == key(s, prefixes=False)
