"""Personal data: what is masked in public text, and how files that hold it are written.

- :func:`mask_numbers` hides phone numbers and national-ID-like digit runs inside free
  text (an address or a name that carries the chief executive's mobile number), so they
  never reach a public output; the registry's own ``phone`` column and its unknown columns
  are never public at all (``dataset.PUBLIC_COLUMNS``).
- :func:`write_private` writes a file readable by the service's user only (0600), in
  one piece (a temporary file renamed into place), for every file the service writes that
  holds personal data: the dataset, ingest reports, the location-report log, tokens.

Not here: which columns are public (``dataset.py``), which headers are personal (``registry.py``).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

PRIVATE_MODE = 0o600
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


def write_private(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically (fsynced, then renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + "-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), PRIVATE_MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make renames and new entries in ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
