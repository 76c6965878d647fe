"""Tests for coopgis.registry: reading, parsing and validating registry files."""

from __future__ import annotations

import json
import random
from datetime import datetime

import openpyxl
import pytest

from coopgis.registry import (
    COLUMNS,
    REASONS,
    RegistryError,
    map_headers,
    read_registry,
)

FA_HEADER = ["شماره ثبت", "نام تعاونی", "نوع تعاونی", "رسته", "وضعیت", "استان", "شهرستان",
             "شهر یا روستا", "طول جغرافیایی", "عرض جغرافیایی", "تعداد اعضا", "تاریخ ثبت"]


def write_csv(path, rows, *, encoding="utf-8", delimiter=","):
    text = "\n".join(delimiter.join(r) for r in rows) + "\n"
    path.write_bytes(text.encode(encoding))
    return path


def write_xlsx(path, rows):
    wb = openpyxl.Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


def only_row(result, source_row):
    (q,) = [q for q in result.quarantined if q["source_row"] == source_row]
    return q


# ---- formats and encodings ---------------------------------------------------

def test_xlsx_with_persian_headers_digits_and_jalali_dates(tmp_path):
    path = write_xlsx(tmp_path / "registry.xlsx", [
        [],  # a blank first row: the header is the first non-empty row
        FA_HEADER + ["زنان", "تلفن"],
        ["۱۲۳۴۵", "تعاونی فرش دستباف مهر", "تولیدی", "فرش", "فعال", "اصفهان", "کاشان",
         "روستای نیاسر", "۵۱٫۱۴۲", "۳۳٫۹۷۲", "۱۲", "۱۴۰۲/۰۵/۱۲", "بله", "۰۹۱۲ ۱۲۳ ۴۵۶۷"],
        [67890, "تعاونی زنبورداری", "خدماتی", "زنبورداری", "منحل", "فارس", "شیراز",
         None, 52.53, 29.61, 1200, datetime(2023, 8, 3), "خیر", None],
    ])
    r = read_registry(path)
    assert r.encoding == "xlsx"
    assert r.header_row == 2
    assert r.rows == 2 and not r.quarantined
    a = r.accepted
    assert list(a.columns) == list(COLUMNS)
    first, second = a.iloc[0], a.iloc[1]
    assert first["registration_no"] == "12345"
    assert first["kind"] == "production" and first["sector"] == "carpet" and first["status"] == "active"
    assert first["lon"] == pytest.approx(51.142) and first["lat"] == pytest.approx(33.972)
    assert first["members"] == 12
    assert first["registered_on"] == "2023-08-03" and first["registered_on_jalali"] == "1402/05/12"
    assert bool(first["women_led"]) is True
    assert first["phone"] == "09121234567"
    assert first["place"] == "روستای نیاسر"
    # numeric and date cells typed by Excel
    assert second["registration_no"] == "67890"
    assert second["members"] == 1200
    assert second["registered_on"] == "2023-08-03" and second["registered_on_jalali"] == "1402/05/12"
    assert second["status"] == "dissolved" and bool(second["women_led"]) is False
    assert second["place"] is None and second["phone"] is None
    assert a["source_row"].tolist() == [1, 2]


def test_xlsx_detected_by_content_whatever_the_extension(tmp_path):
    xlsx = write_xlsx(tmp_path / "a.xlsx", [FA_HEADER[:3] + ["استان"], ["1", "تعاونی الف", "مسکن", "تهران"]])
    renamed = tmp_path / "export.csv"
    renamed.write_bytes(xlsx.read_bytes())
    r = read_registry(renamed)
    assert r.encoding == "xlsx" and r.accepted["kind"].tolist() == ["housing"]


def test_cp1256_csv_with_persian_headers(tmp_path):
    # Windows exports use the Arabic ي, since Windows-1256 has no Persian ی.
    rows = [FA_HEADER[:6], ["501", "تعاونی مرغداری سپید", "توزیعی", "مرغداری", "فعال", "کرمان"]]
    text = "\r\n".join(",".join(r) for r in rows).replace("ی", "ي") + "\r\n"
    path = tmp_path / "registry.csv"
    path.write_bytes(text.encode("cp1256"))
    r = read_registry(path)
    assert r.encoding == "cp1256"
    assert r.header_map["نوع تعاوني"] == "kind"
    row = r.accepted.iloc[0]
    assert row["name"] == "تعاونی مرغداری سپید"  # normalised back to Persian letters
    assert row["kind"] == "distribution" and row["sector"] == "poultry" and row["province"] == "کرمان"


def test_utf8_with_bom(tmp_path):
    path = write_csv(tmp_path / "r.csv", [FA_HEADER[:6], ["7", "تعاونی مسکن", "مسکن", "", "", "تهران"]],
                     encoding="utf-8-sig")
    r = read_registry(path)
    assert r.encoding == "utf-8-sig"
    assert "شماره ثبت" in r.header_map  # the BOM is not part of the first header
    assert r.accepted["registration_no"].tolist() == ["7"]


def test_plain_utf8_and_utf16(tmp_path):
    rows = [FA_HEADER[:6], ["7", "تعاونی مسکن", "مسکن", "", "", "تهران"]]
    assert read_registry(write_csv(tmp_path / "a.csv", rows)).encoding == "utf-8"
    r = read_registry(write_csv(tmp_path / "b.csv", rows, encoding="utf-16", delimiter="\t"))
    assert r.encoding == "utf-16" and r.accepted["province"].tolist() == ["تهران"]


def test_english_headers_with_odd_case_spaces_and_semicolons(tmp_path):
    header = [" Registration Number ", "NAME", "Type", "PROVINCE ", "city_or_village", "Longitude", "LAT",
              "Members", "Women_Led", "Registration Date", "Mobile"]
    path = write_csv(tmp_path / "en.csv", [
        header,
        ["A-1 ", "Niasar Carpet Coop", "Production", "Isfahan", "Niasar", "51,142", "33,972", "1,200",
         "yes", "2023-08-03", "+98 912 123 4567"],
    ], delimiter=";")
    r = read_registry(path)
    assert set(r.header_map.values()) == {"registration_no", "name", "kind", "province", "place", "lon", "lat",
                                          "members", "women_led", "registered_on", "phone"}
    row = r.accepted.iloc[0]
    assert row["registration_no"] == "A-1"
    assert row["kind"] == "production"
    assert row["lon"] == pytest.approx(51.142)  # decimal comma
    assert row["members"] == 1200  # thousands separator
    assert row["phone"] == "+989121234567"
    assert row["registered_on_jalali"] == "1402/05/12"


def test_arabic_letter_forms_in_headers_and_values(tmp_path):
    path = write_csv(tmp_path / "ar.csv", [
        ["شماره ثبت", "نام تعاوني", "نوع تعاوني", "استان", "شهرستان"],
        ["٣٣", "تعاوني كشاورزي", "توزيعي", "كرمان", "رفسنجان"],
    ])
    r = read_registry(path)
    assert r.header_map == {"شماره ثبت": "registration_no", "نام تعاوني": "name", "نوع تعاوني": "kind",
                            "استان": "province", "شهرستان": "county"}
    row = r.accepted.iloc[0]
    assert row["registration_no"] == "33"
    assert row["name"] == "تعاونی کشاورزی"
    assert row["kind"] == "distribution"
    assert row["province"] == "کرمان"


def test_bakhsh_is_district_never_sector():
    mapping, unknown = map_headers(["بخش", "رسته", "دهستان", "گرایش"])
    assert mapping == {"بخش": "district", "رسته": "sector", "دهستان": "rural_district", "گرایش": "sector"}
    assert unknown == []


def test_header_aliases_never_mean_two_columns():
    from coopgis.registry import HEADER_ALIASES, _header_key
    owner = {}
    for canon, aliases in HEADER_ALIASES.items():
        for alias in (canon, *aliases):
            assert owner.setdefault(_header_key(alias), canon) == canon, alias


def test_map_headers_variants_and_unknown():
    mapping, unknown = map_headers(["ش ثبت", "شماره‌ی ثبت", "Reg_No", "عنوان", "Lat.", "تعداد اعضا (نفر)",
                                    "اشتغال ایجاد شده", "شهر/روستا", "ردیف", ""])
    assert mapping == {"ش ثبت": "registration_no", "شماره‌ی ثبت": "registration_no", "Reg_No": "registration_no",
                       "عنوان": "name", "Lat.": "lat", "تعداد اعضا (نفر)": "members",
                       "اشتغال ایجاد شده": "jobs", "شهر/روستا": "place"}
    assert unknown == ["ردیف"]


# ---- files that cannot be read -------------------------------------------------

def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(RegistryError, match="empty") as e:
        read_registry(path)
    assert "empty.csv" in str(e.value)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(RegistryError, match="not found"):
        read_registry(tmp_path / "nope.csv")


def test_blank_lines_only_is_an_error(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("\n \n,,\n", encoding="utf-8")
    with pytest.raises(RegistryError, match="no header"):
        read_registry(path)


def test_header_only_gives_zero_rows(tmp_path):
    r = read_registry(write_csv(tmp_path / "h.csv", [FA_HEADER]))
    assert r.rows == 0 and r.blank_rows == 0 and r.quarantined == []
    assert list(r.accepted.columns) == list(COLUMNS) and len(r.accepted) == 0
    assert str(r.accepted["members"].dtype) == "Int64"


def test_missing_required_column_lists_it_and_the_headers_found(tmp_path):
    path = write_csv(tmp_path / "m.csv", [["شماره ثبت", "نام تعاونی", "استان"], ["1", "الف", "تهران"]])
    with pytest.raises(RegistryError) as e:
        read_registry(path)
    msg = str(e.value)
    assert "m.csv" in msg and "kind" in msg and "نوع تعاونی" in msg
    assert "'استان'" in msg  # the headers that were found
    assert "registration_no" not in msg.split("Headers found")[0]


def test_none_of_the_columns_known(tmp_path):
    path = write_csv(tmp_path / "x.csv", [["a", "b"], ["1", "2"]])
    with pytest.raises(RegistryError, match="registration_no.*name.*kind"):
        read_registry(path)


def test_binary_garbage_is_an_error(tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(RegistryError, match="garbage.csv"):
        read_registry(path)


def test_utf8_with_a_broken_byte_is_an_error_not_mojibake(tmp_path):
    good = write_csv(tmp_path / "u.csv", [FA_HEADER[:6]] + [["1", "تعاونی مسکن مهر", "مسکن", "", "", "تهران"]] * 5)
    broken = tmp_path / "broken.csv"
    broken.write_bytes(good.read_bytes() + b"2,\xff\xfe,x,,,y\n")
    with pytest.raises(RegistryError, match="UTF-8"):
        read_registry(broken)


@pytest.mark.parametrize("content, expected", [
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "xls"),
    (b"<html><body><table><tr><td>1</td></tr></table></body></html>", "HTML"),
    (b"PK\x03\x04 not really a zip", "XLSX"),
])
def test_other_formats_are_errors(tmp_path, content, expected):
    path = tmp_path / "registry.xls"
    path.write_bytes(content)
    with pytest.raises(RegistryError, match=expected):
        read_registry(path)


def test_two_columns_meaning_the_same_thing_is_an_error(tmp_path):
    path = write_csv(tmp_path / "d.csv", [["شماره ثبت", "نام", "نام تعاونی", "نوع"], ["1", "a", "b", "مسکن"]])
    with pytest.raises(RegistryError, match="'نام' and 'نام تعاونی'"):
        read_registry(path)


# ---- row validation --------------------------------------------------------------

def test_bad_rows_get_the_right_reason(tmp_path):
    header = ["شماره ثبت", "نام تعاونی", "نوع تعاونی", "وضعیت", "استان", "طول جغرافیایی", "عرض جغرافیایی",
              "تعداد اعضا", "زنان", "تاریخ ثبت"]
    path = write_csv(tmp_path / "bad.csv", [
        header,
        ["1", "تعاونی خوب", "مسکن", "فعال", "تهران", "51.4", "35.7", "10", "بله", "1402/05/12"],
        ["2", "تعاونی تاریخ", "مسکن", "", "تهران", "", "", "", "", "1402/13/40"],
        ["3", "تعاونی اعضا", "مسکن", "", "تهران", "", "", "-5", "", ""],
        ["4", "تعاونی نوع", "فضایی", "", "تهران", "", "", "", "", ""],
        ["5", "تعاونی مختصات", "مسکن", "", "تهران", "51.4", "", "", "", ""],
        ["6", "", "مسکن", "", "تهران", "", "", "", "", ""],
        ["7", "تعاونی بی‌نوع", "", "", "تهران", "", "", "", "", ""],
        ["8", "تعاونی وضعیت", "مسکن", "نامعلوم", "تهران", "", "", "", "", ""],
        ["9", "تعاونی زن", "مسکن", "", "تهران", "", "", "", "شاید", ""],
        ["10", "تعاونی بی‌جا", "مسکن", "", "", "", "", "", "", ""],
        ["", "تعاونی بی‌شماره", "مسکن", "", "تهران", "", "", "", "", ""],
        ["12", "تعاونی عرض", "مسکن", "", "تهران", "", "abc", "", "", ""],
        ["13", "تعاونی تاریخ مبهم", "مسکن", "", "تهران", "", "", "", "", "03/08/2023"],
        ["14", "تعاونی اعشار", "مسکن", "", "تهران", "", "", "12.5", "", ""],
    ])
    r = read_registry(path)
    expected = {
        2: ["bad_date"], 3: ["bad_members"], 4: ["unknown_kind"], 5: ["bad_coordinate"], 6: ["missing_name"],
        7: ["missing_kind"], 8: ["unknown_status"], 9: ["bad_women_led"], 10: ["no_location"],
        11: ["missing_registration_no"], 12: ["bad_coordinate"], 13: ["bad_date"], 14: ["bad_members"],
    }
    assert {q["source_row"]: q["reasons"] for q in r.quarantined} == expected
    assert r.accepted["source_row"].tolist() == [1]
    assert set(r.by_reason()) <= set(REASONS)
    assert r.by_reason()["bad_date"] == 2
    # details say what is wrong, and the raw values are kept under the original headers
    assert "1402/13/40" in only_row(r, 2)["detail"]["bad_date"]
    assert "negative" in only_row(r, 3)["detail"]["bad_members"]
    assert "latitude is empty" in only_row(r, 5)["detail"]["bad_coordinate"]
    assert "ambiguous" in only_row(r, 13)["detail"]["bad_date"]
    assert only_row(r, 2)["values"]["تاریخ ثبت"] == "1402/13/40"
    assert only_row(r, 4)["values"]["نوع تعاونی"] == "فضایی"


def test_a_row_can_have_several_reasons(tmp_path):
    path = write_csv(tmp_path / "s.csv", [["شماره ثبت", "نام", "نوع", "استان", "تعداد اعضا"],
                                          ["", "", "نامعلوم", "", "-1"]])
    (q,) = read_registry(path).quarantined
    assert q["reasons"] == ["missing_registration_no", "missing_name", "unknown_kind", "no_location",
                            "bad_members"]
    assert set(q["detail"]) == set(q["reasons"])


def test_coordinates_alone_are_a_location_and_are_not_range_checked(tmp_path):
    path = write_csv(tmp_path / "c.csv", [["شماره ثبت", "نام", "نوع", "طول", "عرض"],
                                          ["1", "الف", "مسکن", "۵۱٫۴", "۳۵٫۷"],
                                          ["2", "ب", "مسکن", "0", "0"],
                                          ["3", "ج", "مسکن", "35.7", "51.4"]])
    r = read_registry(path)
    assert r.quarantined == []
    assert r.accepted["lon"].tolist() == [51.4, 0.0, 35.7]  # swapped/zero are the geocoder's business


def test_duplicates_are_quarantined_with_the_first_row_referenced(tmp_path):
    path = write_csv(tmp_path / "dup.csv", [
        ["شماره ثبت", "نام", "نوع", "استان"],
        ["100", "تعاونی یک", "مسکن", "تهران"],
        ["200", "تعاونی دو", "مسکن", "تهران"],
        ["۱۰۰", "تعاونی یک تکراری", "مسکن", "تهران"],
        [" 100 ", "تعاونی یک باز", "مسکن", "فارس"],
    ])
    r = read_registry(path)
    assert r.accepted["registration_no"].tolist() == ["100", "200"]
    assert r.accepted["name"].tolist() == ["تعاونی یک", "تعاونی دو"]  # never merged
    assert [q["source_row"] for q in r.quarantined] == [3, 4]
    for q in r.quarantined:
        assert q["reasons"] == ["duplicate_registration_no"]
        assert "source_row 1" in q["detail"]["duplicate_registration_no"]


def test_unknown_columns_are_kept_in_extra(tmp_path):
    path = write_csv(tmp_path / "e.csv", [
        ["ردیف", "شماره ثبت", "نام", "نوع", "استان", "توضیحات", "مدیرعامل"],
        ["1", "10", "الف", "مسکن", "تهران", "نکته مهم", ""],
        ["", "11", "ب", "مسکن", "تهران", "", ""],
    ])
    r = read_registry(path)
    assert r.unknown_columns == ["ردیف", "توضیحات", "مدیرعامل"]
    first, second = r.accepted["extra"].tolist()
    assert json.loads(first) == {"ردیف": "1", "توضیحات": "نکته مهم"}
    assert second is None


def test_invariant_and_row_numbers_on_a_mixed_file(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text(
        "شماره ثبت,نام تعاونی,نوع تعاونی,استان,تعداد اعضا\n"
        "1,الف,مسکن,تهران,5\n"
        "\n"
        "2,ب,ناشناخته,تهران,5\n"
        ",,,,\n"
        "3,ج,مسکن,تهران,-2\n"
        "4,د,مسکن,تهران\n"            # short row: a field is missing (quarantined, not guessed)
        "5,ه,مسکن,تهران,7,oops\n"      # long row: a stray delimiter
        "1,و,مسکن,تهران,3\n"
        "\n\n",                        # trailing blank lines are not rows
        encoding="utf-8",
    )
    r = read_registry(path)
    assert r.rows == 6 and r.blank_rows == 2
    assert len(r.accepted) + len(r.quarantined) == r.rows
    assert r.accepted["source_row"].tolist() == [1]
    assert {q["source_row"]: q["reasons"] for q in r.quarantined} == {
        3: ["unknown_kind"], 5: ["bad_members"], 6: ["malformed_row"], 7: ["malformed_row"],
        8: ["duplicate_registration_no"]}
    assert only_row(r, 7)["values"]["column_6"] == "oops"
    assert "only 4 of 5 fields" in only_row(r, 6)["detail"]["malformed_row"]
    assert {q["source_row"]: q["line"] for q in r.quarantined} == {3: 4, 5: 6, 6: 7, 7: 8, 8: 9}
    # source_row n is file line n + 1 (blank lines keep their numbers): lines[n] in 0-based terms
    lines = path.read_text(encoding="utf-8").splitlines()
    for q in r.quarantined:
        line = lines[q["source_row"]]
        assert line.split(",")[:2] == [q["values"]["شماره ثبت"], q["values"]["نام تعاونی"]]


def test_unclosed_quote_is_reported_not_silently_accepted(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('شماره ثبت,نام,نوع,استان\n1,"تعاونی الف,مسکن,تهران\n2,ب,مسکن,تهران\n', encoding="utf-8")
    r = read_registry(path)
    (q,) = r.quarantined
    assert "malformed_row" in q["reasons"] and "unclosed quote" in q["detail"]["malformed_row"]
    assert q["line"] == 2
    assert r.accepted["registration_no"].tolist() == ["2"]  # the line it swallowed is read on its own


def test_an_unclosed_quote_swallows_no_rows(tmp_path):
    """One stray quote on line 3 of 50: 1 row quarantined (named by its line), 48 read as they are."""
    rows = [f'{i},تعاونی {i},مسکن,تهران' for i in range(1, 50)]
    rows[1] = '2,"تعاونی ۲,مسکن,تهران'
    path = tmp_path / "q.csv"
    path.write_text("شماره ثبت,نام,نوع,استان\n" + "\n".join(rows) + '\n50,"پنجاه",مسکن,تهران\n', encoding="utf-8")
    r = read_registry(path)
    assert r.rows == 50 and len(r.accepted) == 49
    (q,) = r.quarantined
    assert q["line"] == 3 and q["source_row"] == 2 and "unclosed quote" in q["detail"]["malformed_row"]
    assert "lines 4-51" in q["detail"]["malformed_row"]
    assert r.accepted["name"].tolist()[-1] == "پنجاه"


def test_control_characters_are_removed_and_reported(tmp_path):
    head = "شماره ثبت,نام,نوع,استان\n"
    body = "".join(f"{i},تعاونی {i},مسکن,تهران\n" for i in range(1, 3000))   # past the first 64 KB
    path = tmp_path / "nul.csv"
    path.write_bytes((head + body + "3000,تعاونی\x00 نول\x07,مسکن,تهران\n").encode("utf-8"))
    r = read_registry(path)
    assert r.rows == 3000 and r.quarantined == []
    assert r.accepted["name"].iloc[-1] == "تعاونی نول"
    assert r.control_characters == {3001: 2}


def test_a_file_of_mixed_encodings_is_refused_naming_the_lines(tmp_path):
    utf8 = "".join(f"{i},تعاونی {i},مسکن,تهران\n" for i in range(1, 101)).encode("utf-8")
    cp = "".join(f"{i},تعاونی {i},مسکن,تهران\n" for i in range(101, 111)).replace("ی", "ي").encode("cp1256")
    path = tmp_path / "mixed.csv"
    path.write_bytes("شماره ثبت,نام,نوع,استان\n".encode() + utf8 + cp)
    with pytest.raises(RegistryError, match=r"mixes text encodings.*lines 1, 2, 3, 4, 5 and 96 more are UTF-8.*"
                                            r"lines 102, 103, 104, 105, 106 and 5 more are not"):
        read_registry(path)
    only_cp = tmp_path / "cp.csv"
    only_cp.write_bytes("شماره ثبت,نام,نوع,استان\n".replace("ی", "ي").encode("cp1256") + cp)
    r = read_registry(only_cp)
    assert r.encoding == "cp1256" and r.accepted["name"].iloc[0] == "تعاونی 101"


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path):
    import time

    big = tmp_path / "big.csv"
    with open(big, "wb") as f:
        f.write("شماره ثبت,نام,نوع\n".encode())
        f.truncate(2 * 1024 ** 3)  # 2 GB, sparse: no disk used
    started = time.perf_counter()
    with pytest.raises(RegistryError, match=r"is 2\.0 GB; registry files are read up to 512\.0 MB"):
        read_registry(big, max_bytes=512 * 1024 ** 2)
    assert time.perf_counter() - started < 1
    xlsx = write_xlsx(tmp_path / "r.xlsx", [["شماره ثبت", "نام", "نوع"], *[["1", "ن" * 1000, "مسکن"]] * 200])
    with pytest.raises(RegistryError, match="unpacks to"):
        read_registry(xlsx, max_bytes=100_000)


def test_multiline_value_in_a_complete_row_is_fine(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('شماره ثبت,نام,نوع,نشانی\n1,الف,مسکن,"خیابان یک\nکوچه دو"\n', encoding="utf-8")
    r = read_registry(path)
    assert r.quarantined == [] and r.accepted["address"].tolist() == ["خیابان یک کوچه دو"]


def test_excel_sep_hint_line(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("sep=;\nشماره ثبت;نام;نوع;استان\n1;الف;مسکن;تهران\n", encoding="utf-8")
    r = read_registry(path)
    assert r.header_row == 2 and r.accepted["province"].tolist() == ["تهران"]


def test_xlsx_stray_cells_blank_rows_and_row_numbers(tmp_path):
    path = write_xlsx(tmp_path / "s.xlsx", [
        ["شماره ثبت", "نام", "نوع", "استان"],
        ["1", "الف", "مسکن", "تهران", None, "یادداشت"],
        [], [],
        ["2", "ب", "مسکن", "تهران"],
        [None, None], [None],  # formatted but empty rows at the end
    ])
    r = read_registry(path)
    assert r.rows == 2 and r.blank_rows == 2
    assert r.unknown_columns == ["column_6"]
    assert r.accepted["source_row"].tolist() == [1, 4]  # Excel rows 2 and 5 = header_row + source_row
    assert json.loads(r.accepted["extra"][0]) == {"column_6": "یادداشت"}


def test_dtypes_of_accepted(tmp_path):
    path = write_csv(tmp_path / "t.csv", [["شماره ثبت", "نام", "نوع", "استان", "اعضا", "اشتغال", "زنان", "طول", "عرض"],
                                          ["1", "الف", "مسکن", "تهران", "3", "", "بله", "51", "35"],
                                          ["2", "ب", "مسکن", "تهران", "", "4", "", "", ""]])
    a = read_registry(path).accepted
    assert str(a["members"].dtype) == "Int64" and str(a["jobs"].dtype) == "Int64"
    assert str(a["women_led"].dtype) == "boolean"
    assert a["lon"].dtype == "float64" and a["source_row"].dtype == "int64"
    assert a["members"].isna().tolist() == [False, True]
    assert a["sector"].tolist() == [None, None]
