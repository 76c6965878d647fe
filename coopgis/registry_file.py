"""Registry files read into records: size checks, text encodings, CSV lines and XLSX sheets.

A file is refused before it is read when it is too large (an XLSX also by its unpacked
size); a CSV's encoding is found and checked (a file mixing encodings is refused), control
characters are removed and counted per line, and a quote left open is reported for its
line instead of swallowing the lines after it.

Not here: what the columns mean and whether a row is valid (``registry.py``).
"""

from __future__ import annotations

import bisect
import csv
import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any


class RegistryError(Exception):
    """The registry file cannot be read at all (missing, empty, not CSV/XLSX,
    undecodable, no header, required columns missing, ambiguous columns)."""


_SIGNATURES = (
    (b"\xd0\xcf\x11\xe0", "a legacy Excel 97-2003 (.xls) or other OLE document; save it as .xlsx or CSV"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAK = re.compile(r"\r\n|\n|\r")
_MARKUP = re.compile(r"\s*<(?:!doctype|html|\?xml|table|head|body)", re.IGNORECASE)
_DELIMITERS = (",", ";", "\t", "|")


def check_file(path: str | Path, max_bytes: int | None = None) -> None:
    """RegistryError unless ``path`` is a file of at most ``max_bytes`` (checked without reading it)."""
    path = Path(path)
    if not path.exists():
        raise RegistryError(f"{path}: file not found")
    if path.is_dir():
        raise RegistryError(f"{path}: is a directory, not a registry file")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise RegistryError(f"{path}: cannot be read ({e.strerror or e})") from None
    if max_bytes is not None and size > max_bytes:
        raise RegistryError(f"{path}: is {_size(size)}; registry files are read up to {_size(max_bytes)} "
                            "(COOPGIS_INGEST_MAX_BYTES). Split it, or raise the limit if the machine has "
                            "the memory")


def _read_bytes(path: Path, max_bytes: int | None) -> bytes:
    check_file(path, max_bytes)  # refused before a byte is read
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RegistryError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not data:
        raise RegistryError(f"{path}: file is empty (0 bytes)")
    return data


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} bytes" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"


def _decode(path: Path, data: bytes) -> tuple[str, str]:
    """The text of a CSV file and its encoding: from its BOM, else UTF-8, else Windows-1256 (checked)."""
    for bom, enc in ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
                     (b"\xfe\xff", "utf-16"), (b"\xef\xbb\xbf", "utf-8-sig")):
        if data.startswith(bom):
            try:
                return data.decode(enc).lstrip("\ufeff"), enc
            except UnicodeDecodeError as e:
                raise RegistryError(f"{path}: starts with a {enc.upper()} byte order mark but is not {enc.upper()} "
                                    f"text (first bad byte at {e.start})") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # Not UTF-8 as a whole: decide per line. UTF-8 lines beside others is a file of mixed encodings,
    # which no single decoding reads right; Windows-1256 for the whole file would turn the UTF-8
    # lines into mojibake.
    lines = data.split(b"\n")
    utf8, other = [], []
    for n, line in enumerate(lines, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            other.append(n)
            continue
        if not line.isascii():
            utf8.append(n)
    if utf8:
        raise RegistryError(f"{path}: mixes text encodings: {_lines(utf8)} UTF-8, {_lines(other)} not (Windows-1256 "
                            "or damaged). Save the whole file in one encoding (UTF-8) and ingest it again")
    text = data.decode("cp1256", errors="replace")
    letters = [c for c in text if not c.isascii() and c.isalpha()]
    persian = sum("\u0600" <= c <= "\u06ff" for c in letters)
    if "\ufffd" in text or (letters and persian < 0.8 * len(letters)):
        raise RegistryError(f"{path}: is neither UTF-8 nor Windows-1256 Persian text (tried both); save it as "
                            "UTF-8 and ingest it again")
    return text, "cp1256"


def _lines(numbers: list[int], shown: int = 5) -> str:
    """'line 7' / 'lines 2, 3, 4, 5, 6 and 95 more'."""
    if len(numbers) == 1:
        return f"line {numbers[0]} is"
    head = ", ".join(str(n) for n in numbers[:shown])
    more = f" and {len(numbers) - shown} more" if len(numbers) > shown else ""
    return f"lines {head}{more} are"


def _check_text(path: Path, text: str) -> None:
    sample = text[:65536]
    if len(_CONTROL.findall(sample)) > max(2, len(sample) // 100):
        raise RegistryError(f"{path}: is not a CSV or XLSX file (binary content)")
    if _MARKUP.match(sample):
        raise RegistryError(f"{path}: is an HTML/XML document, not a CSV or XLSX file; "
                            "open it in Excel and save it as .xlsx or CSV")


def _strip_controls(text: str) -> tuple[str, dict[int, int]]:
    """The text without control characters (NUL ...; tab and line breaks stay), and {line: removed}."""
    found = [m.start() for m in _CONTROL.finditer(text)]
    if not found:
        return text, {}
    breaks = [m.start() for m in _LINE_BREAK.finditer(text)]
    removed: dict[int, int] = {}
    for pos in found:
        line = bisect.bisect_left(breaks, pos) + 1
        removed[line] = removed.get(line, 0) + 1
    return _CONTROL.sub("", text), removed


def _sniff_delimiter(lines: list[str], known_header: Callable[[str], bool]) -> str:
    """The delimiter that makes the header line yield the most known columns."""
    first = next((ln for ln in lines if ln.strip()), "")
    best, best_score = ",", (-1, -1)
    for d in _DELIMITERS:
        try:
            fields = next(csv.reader([first], delimiter=d), [])
        except csv.Error:
            continue
        score = (sum(known_header(f) for f in fields), len(fields))
        if score > best_score:
            best, best_score = d, score
    return best


@dataclass
class Records:
    """What a file holds before validation: its records and where each one starts."""

    records: list[list[str]]
    lines: list[int]                 # per record: its first line (CSV) or row (XLSX) in the file
    encoding: str
    is_xlsx: bool
    anomalies: dict[int, str]        # record index -> what is wrong with how it was written
    controls: dict[int, int]         # line -> control characters removed


def _csv_records(path: Path, data: bytes, known_header: Callable[[str], bool]) -> Records:
    """The records of a CSV file; a quote that swallows whole lines is reported, not merged."""
    text, encoding = _decode(path, data)
    _check_text(path, text)
    text, controls = _strip_controls(text)
    lines = io.StringIO(text, newline="").readlines()   # on \r\n, \n or \r only, line ends kept
    first = 0
    m = re.match(r"sep=(.)\s*$", lines[0]) if lines else None  # Excel's delimiter hint line
    if m:
        delimiter, first = m.group(1), 1
    else:
        delimiter = _sniff_delimiter(lines[:50], known_header)
    records, starts, anomalies = _parse_lines(lines, first, delimiter)
    return Records(records, starts, encoding, False, anomalies, controls)


class _LineSource:
    """The lines of a file for csv.reader, with the position of the next one (rewindable)."""

    def __init__(self, lines: list[str], pos: int):
        self.lines, self.pos = lines, pos

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1]


def _parse_lines(lines: list[str], first: int, delimiter: str) -> tuple[list[list[str]], list[int], dict[int, str]]:
    """Records, the 1-based line each starts on, and anomalies by record index.

    A record running over several lines is a value with line breaks, unless one of the
    lines it swallowed looks like a record of its own (as many delimiters as the header):
    then a quote was left open. That line is taken as a record on its own (flagged), and
    reading starts again on the next line, so the lines after it are read as the records
    they are.
    """
    src = _LineSource(lines, first)
    reader = csv.reader(src, delimiter=delimiter, strict=False)
    records: list[list[str]] = []
    starts: list[int] = []
    anomalies: dict[int, str] = {}
    width = None
    while True:
        start = src.pos
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as e:  # e.g. a value over the CSV field limit
            anomalies[len(records)] = f"line {start + 1} cannot be read as CSV ({e})"
            records.append(next(csv.reader([lines[start][:2000]], delimiter=delimiter, strict=False), []))
            starts.append(start + 1)
            src.pos = start + 1
            reader = csv.reader(src, delimiter=delimiter, strict=False)
            continue
        if width is None and "".join(rec).strip():
            width = len(rec)
        end = src.pos
        if end - start > 1 and width and _swallowed(lines[start + 1:end], delimiter, width):
            swallowed = f"line {end}" if end == start + 2 else f"lines {start + 2}-{end}"
            anomalies[len(records)] = (f"unclosed quote on line {start + 1}: it would have swallowed {swallowed} into "
                                       "one value; they are read on their own")
            records.append(next(csv.reader([lines[start]], delimiter=delimiter, strict=False), []))
            starts.append(start + 1)
            src.pos = start + 1
            reader = csv.reader(src, delimiter=delimiter, strict=False)
            continue
        records.append(rec)
        starts.append(start + 1)
    return records, starts, anomalies


def _swallowed(continuation: list[str], delimiter: str, width: int) -> bool:
    """True when a line inside one value has as many delimiters as a whole record."""
    need = max(2, width - 1)
    return any(line.count(delimiter) >= need for line in continuation)


def _cell_str(v: Any) -> str:
    """An Excel cell value as the text a person would have typed."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isfinite(v) and v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    if isinstance(v, datetime):
        return v.date().isoformat() if v.time() == time(0) else v.isoformat(sep=" ")
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def _xlsx_records(path: Path, data: bytes, max_bytes: int | None) -> Records:
    import openpyxl

    _check_unpacked_size(path, data, max_bytes)
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # openpyxl fails in many ways on non-workbooks; all mean "cannot read"
        raise RegistryError(f"{path}: is not a readable XLSX workbook ({type(e).__name__}: {e})") from None
    controls: dict[int, int] = {}
    try:
        if not wb.worksheets:
            raise RegistryError(f"{path}: workbook has no worksheet")
        ws = wb.worksheets[0]
        if hasattr(ws, "reset_dimensions"):
            ws.reset_dimensions()  # do not trust the stored sheet size
        records = []
        for n, row in enumerate(ws.iter_rows(values_only=True), start=1):
            cells = list(row)
            while cells and (cells[-1] is None or cells[-1] == ""):
                cells.pop()
            values = [_cell_str(v) for v in cells]
            removed = sum(len(_CONTROL.findall(v)) for v in values)
            if removed:
                controls[n] = removed
                values = [_CONTROL.sub("", v) for v in values]
            records.append(values)
    except RegistryError:
        raise
    except Exception as e:
        raise RegistryError(f"{path}: is not a readable XLSX workbook ({type(e).__name__}: {e})") from None
    finally:
        wb.close()
    return Records(records, list(range(1, len(records) + 1)), "xlsx", True, {}, controls)


def _check_unpacked_size(path: Path, data: bytes, max_bytes: int | None) -> None:
    """Refuse a workbook whose parts unpack to more than the limit (a small file can hold gigabytes)."""
    import zipfile

    try:
        total = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise RegistryError(f"{path}: is not a readable XLSX workbook ({type(e).__name__}: {e})") from None
    if max_bytes is not None and total > max_bytes:
        raise RegistryError(f"{path}: unpacks to {_size(total)}; registry files are read up to {_size(max_bytes)} "
                            "(COOPGIS_INGEST_MAX_BYTES)")


def load_records(path: Path, max_bytes: int | None, known_header: Callable[[str], bool]) -> Records:
    """The records of a CSV or XLSX file; ``known_header`` tells a header name the registry knows
    (it picks the CSV delimiter). RegistryError when the file cannot be read at all."""
    data = _read_bytes(path, max_bytes)
    suffix = path.suffix.lower()
    if data.startswith(b"PK\x03\x04"):
        return _xlsx_records(path, data, max_bytes)
    if suffix in (".xlsx", ".xlsm"):
        raise RegistryError(f"{path}: has a {suffix} name but is not an XLSX workbook (no ZIP signature)")
    for magic, what in _SIGNATURES:
        if data.startswith(magic):
            raise RegistryError(f"{path}: is {what}, not a CSV or XLSX file")
    return _csv_records(path, data, known_header)
