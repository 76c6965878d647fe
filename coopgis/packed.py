"""Many byte strings in one buffer, written once to a private file that every process reads.

The served features (``dataset.Collection``, ``tiles.PlaceLayer``) and the search index (``search``) are
kept this way in ``COOPGIS_CACHE_DIR``: a restart reads them instead of making them again, and the workers
of one machine share the kernel's pages of them.

A file is read in one of two ways:

- :meth:`Packed.opened`: the items a request asks for are read with ``pread`` (near ones together), and
  only the offsets are memory-mapped. No process holds the items' pages: the kernel's page cache does,
  once for all workers, and may drop them when memory is short. The served feature files are read so.
  (Mapped, a page of 1,000 scattered features maps the large folios around each of them: the whole
  76 MB properties file at 100,000 cooperatives was resident in every worker within seconds of load.)
- :meth:`Packed.mapped`: the whole file is memory-mapped, for a reader that searches it in place
  (the search index).
"""

from __future__ import annotations

import contextlib
import io
import logging
import mmap
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from coopgis.files import write_private

log = logging.getLogger("coopgis")

# Items of an opened file closer than this are read in one ``pread`` (a call costs about as much as
# copying a few kilobytes), up to READ_MAX bytes a read: a larger buffer would be a fresh mapping of its own
# once serving (loading.tune_malloc), whose every page faults in.
READ_GAP = 16 * 1024
READ_MAX = 256 * 1024


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
        self._file: io.FileIO | None = None    # an opened file: items are read from it, not from _buf

    def save(self, path: Path) -> None:
        """Write to ``path`` (0600, atomically: a reader finds the old file or the whole new one)."""
        start, end = int(self._offsets[0]), int(self._offsets[-1])
        data = memoryview(self._buf)[self._base + start:self._base + end] if self._file is None else \
            self._read(self._base + start, self._base + end)
        self._write(path, len(self), (self._offsets - start).astype("<i8"), data)

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
        """The items a :meth:`save` wrote, the whole file memory-mapped read-only (None: no such file, or
        not whole)."""
        try:
            with path.open("rb") as f:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):   # missing, unreadable, or empty
            return None
        return cls._checked(mm, len(mm))

    @classmethod
    def opened(cls, path: Path) -> Packed | None:
        """The items a :meth:`save` wrote, read from the file when asked for; only the header and offsets
        are memory-mapped (None: no such file, or not whole)."""
        try:
            f = io.FileIO(path, "r")
        except OSError:
            return None
        out = None
        with contextlib.suppress(OSError, ValueError):   # unreadable, empty, or shorter than its header says
            head = os.pread(f.fileno(), len(cls.MAGIC) + 8, 0)
            n = int(np.frombuffer(head, "<i8", 1, len(cls.MAGIC))[0]) if len(head) == len(cls.MAGIC) + 8 else -1
            if 0 <= n < 2 ** 40:
                mm = mmap.mmap(f.fileno(), len(head) + 8 * (n + 1), access=mmap.ACCESS_READ)
                out = cls._checked(mm, os.fstat(f.fileno()).st_size)
        if out is None:
            f.close()
        else:
            out._file = f
        return out

    @classmethod
    def _checked(cls, head: mmap.mmap, size: int) -> Packed | None:
        """The items of a file of ``size`` bytes whose start ``head`` maps (its header and offsets, or the
        whole file), or None when they do not describe a whole file."""
        start = len(cls.MAGIC) + 8
        if len(head) < start or head[:len(cls.MAGIC)] != cls.MAGIC:
            return None
        n = int(np.frombuffer(head, "<i8", 1, len(cls.MAGIC))[0])
        if n < 0 or len(head) < start + 8 * (n + 1):
            return None
        offsets = np.frombuffer(head, "<i8", n + 1, start)    # in place: no copy in each process
        start += 8 * (n + 1)
        if offsets[0] != 0 or start + offsets[-1] != size or (n and bool((np.diff(offsets) < 0).any())):
            return None
        out = cls(())
        out._buf, out._offsets, out._base = head, offsets, start
        return out

    @classmethod
    def kept(cls, paths: list[Path] | None, make: Callable[[], Sequence[Packed]], keep: int,
             size: int | None = None) -> list[Packed]:
        """Packed files written once and read by every process (:meth:`opened`): those at ``paths``, when all
        are whole and of one length (``size`` when given); else ``make()``'s, written there (of the folder's
        ``*.packed`` files, the ``keep`` newest stay) and opened. In memory when ``paths`` is None or cannot
        be written."""
        if paths is not None and (done := cls._all_opened(paths, size)) is not None:
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
        return cls._all_opened(paths, size) or made

    @classmethod
    def _all_opened(cls, paths: list[Path], size: int | None) -> list[Packed] | None:
        opened = [m for path in paths if (m := cls.opened(path)) is not None]
        if len(opened) != len(paths) or len({len(m) for m in opened}) != 1 or \
                (size is not None and len(opened[0]) != size):
            return None
        return opened

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> bytes:
        b = self._base
        return self._read(b + int(self._offsets[i]), b + int(self._offsets[i + 1]))

    def items(self, rows: np.ndarray) -> list[bytes]:
        """``[self[i] for i in rows]``, the offsets read at once (of an opened file: near items in one read)."""
        rows = np.asarray(rows, np.int64)
        starts, ends = self._offsets[rows] + self._base, self._offsets[rows + 1] + self._base
        if self._file is None:
            buf = self._buf
            return [buf[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
        return self._read_many(starts, ends)

    def _read_many(self, starts: np.ndarray, ends: np.ndarray) -> list[bytes]:
        """The bytes from each of ``starts`` to its end, of an opened file: items less than READ_GAP apart
        are read in one call."""
        if not len(starts):
            return []
        order = np.argsort(starts, kind="stable")
        s, e = starts[order], ends[order]
        reach = np.maximum.accumulate(e)
        order_, s_, e_, reach_ = order.tolist(), s.tolist(), e.tolist(), reach.tolist()
        out: list[bytes] = [b""] * len(s)
        g0, n = 0, len(s_)
        while g0 < n:            # one read from item g0 to g1 - 1
            lo, g1 = s_[g0], g0 + 1
            while g1 < n and s_[g1] <= reach_[g1 - 1] + READ_GAP and reach_[g1] - lo <= READ_MAX:
                g1 += 1
            chunk = self._read(lo, reach_[g1 - 1])
            for k in range(g0, g1):
                out[order_[k]] = chunk[s_[k] - lo:e_[k] - lo]
            g0 = g1
        return out

    def _read(self, a: int, b: int) -> bytes:
        """The bytes from ``a`` to ``b`` of the buffer, or of the opened file."""
        if self._file is None:
            return self._buf[a:b]
        data = os.pread(self._file.fileno(), b - a, a)
        if len(data) != b - a:
            raise OSError(f"{self._file.name}: {len(data)} of {b - a} bytes at {a}: the file was cut short")
        return data

    def view(self, i: int) -> memoryview:
        """Item ``i`` (of a mapped file without a copy: its pages, shared by every process mapping it)."""
        b = self._base
        a, z = b + int(self._offsets[i]), b + int(self._offsets[i + 1])
        return memoryview(self._buf)[a:z] if self._file is None else memoryview(self._read(a, z))

    def find(self, i: int, sub: bytes, start: int = 0) -> int:
        """``bytes.find`` of ``sub`` in item ``i`` from ``start`` within it (in place when mapped): -1 when
        absent."""
        begin, end = self._base + int(self._offsets[i]), self._base + int(self._offsets[i + 1])
        if self._file is not None:
            return self._read(begin, end).find(sub, start)
        at = self._buf.find(sub, begin + start, end)
        return at - begin if at >= 0 else -1

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def replaced(self, rows: np.ndarray, parts: Packed) -> Packed:
        """A copy in memory with ``parts[k]`` in place of item ``rows[k]`` (rows ascending), in one pass."""
        out = Packed(())
        pieces, start = [], 0
        lengths = np.diff(self._offsets)
        b, end = self._base, self._base + int(self._offsets[-1])
        for k, i in enumerate(rows):
            pieces.append(self._read(b + int(self._offsets[start]), b + int(self._offsets[i])))
            pieces.append(parts[k])
            lengths[i] = len(parts[k])
            start = int(i) + 1
        pieces.append(self._read(b + int(self._offsets[start]), end))
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
