"""Many byte strings in one buffer, written once to a private file and memory-mapped by every process.

The served features (``dataset.Collection``) and the search index (``search``) are kept this way in
``COOPGIS_CACHE_DIR``: a restart maps them instead of making them again, and the workers of one machine
share their pages.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from coopgis.files import write_private

log = logging.getLogger("coopgis")


class Packed:
    """Many small byte strings in one buffer: ``packed[i]`` is the i-th.

    A list of 100,000 separately allocated JSON fragments costs several times their
    size in memory (allocator slack); one buffer and an offset array cost their size.
    """

    MAGIC = b"coopgis-packed-1"

    def __init__(self, parts):
        buf = bytearray()
        offsets = [0]
        for part in parts:
            buf += part
            offsets.append(len(buf))
        self._buf: bytes | mmap.mmap = bytes(buf)
        # item i is _buf[_base + _offsets[i]:_base + _offsets[i + 1]]: a mapped file's offsets are read in
        # place (its pages, shared), after its header
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._base = 0

    def save(self, path: Path) -> None:
        """Write to ``path`` (0600, atomically: a reader finds the old file or the whole new one)."""
        start, end = int(self._offsets[0]), int(self._offsets[-1])
        self._write(path, len(self), (self._offsets - start).astype("<i8"),
                    memoryview(self._buf)[self._base + start:self._base + end])

    @classmethod
    def write(cls, path: Path, parts) -> None:
        """Write ``parts`` (bytes-like objects: bytes, memoryviews, contiguous arrays) as the items of a
        packed file, without joining them in memory first."""
        views = [memoryview(p).cast("B") for p in parts]
        offsets = np.concatenate([[0], np.cumsum([v.nbytes for v in views], dtype=np.int64)]).astype("<i8")
        cls._write(path, len(views), offsets, *views)

    @classmethod
    def _write(cls, path: Path, n: int, offsets: np.ndarray, *data) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(path, cls.MAGIC + np.int64(n).astype("<i8").tobytes(), offsets.tobytes(), *data)

    @classmethod
    def mapped(cls, path: Path) -> Packed | None:
        """The items a :meth:`save` wrote, memory-mapped read-only (None: no such file, or not whole)."""
        try:
            with path.open("rb") as f:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):   # missing, unreadable, or empty
            return None
        head = len(cls.MAGIC) + 8
        if len(mm) < head or mm[:len(cls.MAGIC)] != cls.MAGIC:
            return None
        n = int(np.frombuffer(mm, "<i8", 1, len(cls.MAGIC))[0])
        start = head + 8 * (n + 1)
        if n < 0 or len(mm) < start:
            return None
        offsets = np.frombuffer(mm, "<i8", n + 1, head)    # in place: no copy in each process
        if offsets[0] != 0 or start + offsets[-1] != len(mm) or (n and bool((np.diff(offsets) < 0).any())):
            return None
        out = cls(())
        out._buf, out._offsets, out._base = mm, offsets, start
        return out

    @classmethod
    def kept(cls, paths: list[Path] | None, make: Callable[[], Sequence[Packed]], keep: int,
             size: int | None = None) -> list[Packed]:
        """Packed files written once and mapped by every process: those at ``paths``, when all are whole and
        of one length (``size`` when given); else ``make()``'s, written there (of the folder's ``*.packed``
        files, the ``keep`` newest stay) and mapped. In memory when ``paths`` is None or cannot be written."""
        if paths is not None and (done := cls._all_mapped(paths, size)) is not None:
            return done
        made = list(make())
        if paths is None:
            return made
        try:
            for part, path in zip(made, paths, strict=True):
                part.save(path)
            prune(paths[0].parent, "*.packed", keep)
        except OSError as exc:   # a read-only or full cache folder: serve from memory
            log.warning("%s not written to %s (%s): kept in memory", paths[0].name, paths[0].parent, exc)
            return made
        return cls._all_mapped(paths, size) or made

    @classmethod
    def _all_mapped(cls, paths: list[Path], size: int | None) -> list[Packed] | None:
        mapped = [m for path in paths if (m := cls.mapped(path)) is not None]
        if len(mapped) != len(paths) or len({len(m) for m in mapped}) != 1 or \
                (size is not None and len(mapped[0]) != size):
            return None
        return mapped

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> bytes:
        b = self._base
        return self._buf[b + self._offsets[i]:b + self._offsets[i + 1]]

    def items(self, rows: np.ndarray) -> list[bytes]:
        """``[self[i] for i in rows]``, the offsets read at once."""
        rows = np.asarray(rows, np.int64)
        buf, starts, ends = self._buf, self._offsets[rows] + self._base, self._offsets[rows + 1] + self._base
        return [buf[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]

    def view(self, i: int) -> memoryview:
        """Item ``i`` without a copy (of a mapped file: its pages, shared by every process mapping it)."""
        b = self._base
        return memoryview(self._buf)[b + self._offsets[i]:b + self._offsets[i + 1]]

    def find(self, i: int, sub: bytes, start: int = 0) -> int:
        """``bytes.find`` of ``sub`` in item ``i`` from ``start`` within it, in place: -1 when absent."""
        begin, end = self._base + int(self._offsets[i]), self._base + int(self._offsets[i + 1])
        at = self._buf.find(sub, begin + start, end)
        return at - begin if at >= 0 else -1

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def replaced(self, rows: np.ndarray, parts: Packed) -> Packed:
        """A copy with ``parts[k]`` in place of item ``rows[k]`` (rows ascending), in one pass over the buffer."""
        out = Packed(())
        pieces, start = [], 0
        lengths = np.diff(self._offsets)
        for k, i in enumerate(rows):
            pieces.append(self._buf[self._base + self._offsets[start]:self._base + self._offsets[i]])
            pieces.append(parts[k])
            lengths[i] = len(parts[k])
            start = int(i) + 1
        pieces.append(self._buf[self._base + self._offsets[start]:])
        out._buf = b"".join(pieces)
        out._offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return out


def prune(folder: Path, pattern: str, keep: int) -> None:
    """Remove all but the ``keep`` newest files matching ``pattern`` (a process still mapping a removed
    one keeps its pages)."""
    files = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        with contextlib.suppress(OSError):
            old.unlink()
