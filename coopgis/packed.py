"""Many byte strings in one buffer, written once to a private file and read by every process.

The served features (``dataset.Collection``) and the search index (``search``) are kept this way in
``COOPGIS_CACHE_DIR``: a restart reads them instead of making them again, and the workers of one machine
share their pages. The search index is memory-mapped (a search scans it whole). The features are read
with ``pread`` (:meth:`Packed.opened`): a request copies out only the features it answers with, and the
file's pages stay in the kernel's page cache, once for all workers, rather than in each process's
resident memory (mapped, they were: 86 MB per process at 100,000 cooperatives after a mixed load).
"""

from __future__ import annotations

import contextlib
import mmap
import os
from pathlib import Path

import numpy as np

from coopgis.files import write_private


class Packed:
    """Many small byte strings in one buffer: ``packed[i]`` is the i-th.

    A list of 100,000 separately allocated JSON fragments costs several times their
    size in memory (allocator slack); one buffer and an offset array cost their size.
    """

    MAGIC = b"coopgis-packed-1"
    HEAD = len(MAGIC) + 8

    def __init__(self, parts):
        buf = bytearray()
        offsets = [0]
        for part in parts:
            buf += part
            offsets.append(len(buf))
        self._buf: bytes | mmap.mmap | FileBytes = bytes(buf)
        self._offsets = np.asarray(offsets, dtype=np.int64)

    def save(self, path: Path) -> None:
        """Write to ``path`` (0600, atomically: a reader finds the old file or the whole new one)."""
        start, end = int(self._offsets[0]), int(self._offsets[-1])
        data = self._buf[start:end] if isinstance(self._buf, FileBytes) else memoryview(self._buf)[start:end]
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
        """The items a :meth:`save` wrote, memory-mapped read-only (None: no such file, or not whole)."""
        try:
            with path.open("rb") as f:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):   # missing, unreadable, or empty
            return None
        return cls._checked(mm, mm[:cls.HEAD], len(mm), lambda n: mm[cls.HEAD:cls.HEAD + 8 * (n + 1)])

    @classmethod
    def opened(cls, path: Path) -> Packed | None:
        """The items a :meth:`save` wrote, read from the file when asked for (``pread``: none of the file
        held by this process; None: no such file, or not whole)."""
        try:
            data = FileBytes(path)
        except OSError:
            return None
        return cls._checked(data, data[:cls.HEAD], len(data), lambda n: data[cls.HEAD:cls.HEAD + 8 * (n + 1)])

    @classmethod
    def _checked(cls, buf, head: bytes, size: int, offsets_of) -> Packed | None:
        if len(head) < cls.HEAD or head[:len(cls.MAGIC)] != cls.MAGIC:
            return None
        n = int(np.frombuffer(head, "<i8", 1, len(cls.MAGIC))[0])
        start = cls.HEAD + 8 * (n + 1)
        if n < 0 or size < start:
            return None
        offsets = np.frombuffer(offsets_of(n), "<i8", n + 1).astype(np.int64) + start
        if offsets[0] != start or offsets[-1] != size or (n and bool((np.diff(offsets) < 0).any())):
            return None
        out = cls(())
        out._buf, out._offsets = buf, offsets
        return out

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> bytes:
        return self._buf[self._offsets[i]:self._offsets[i + 1]]

    def items(self, rows: np.ndarray) -> list[bytes]:
        """``[self[i] for i in rows]``, the offsets read at once (from a file: nearby items in one read)."""
        rows = np.asarray(rows, np.int64)
        buf = self._buf
        if isinstance(buf, FileBytes):
            return buf.pieces(self._offsets[rows], self._offsets[rows + 1])
        return [buf[a:b] for a, b in zip(self._offsets[rows].tolist(), self._offsets[rows + 1].tolist(), strict=True)]

    def view(self, i: int) -> memoryview:
        """Item ``i`` without a copy (of a mapped file: its pages, shared by every process mapping it)."""
        assert not isinstance(self._buf, FileBytes), "views are of packed items in memory or mapped"
        return memoryview(self._buf)[self._offsets[i]:self._offsets[i + 1]]

    def find(self, i: int, sub: bytes, start: int = 0) -> int:
        """``bytes.find`` of ``sub`` in item ``i`` from ``start`` within it, in place: -1 when absent."""
        assert not isinstance(self._buf, FileBytes), "finds are in packed items in memory or mapped"
        begin, end = int(self._offsets[i]), int(self._offsets[i + 1])
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
            pieces.append(self._buf[self._offsets[start]:self._offsets[i]])
            pieces.append(parts[k])
            lengths[i] = len(parts[k])
            start = int(i) + 1
        pieces.append(self._buf[self._offsets[start]:])
        out._buf = b"".join(pieces)
        out._offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return out


class FileBytes:
    """A read-only file as a byte string: ``data[a:b]`` reads those bytes with ``pread`` (thread-safe: no
    shared file position). The file stays open while this object lives, so a file removed meanwhile (a newer
    set of features pruned the old) is still read whole."""

    GAP = 4096          # items this close together are read in one call, the bytes between read and dropped
    MOST = 1 << 20      # and one call reads at most this much (a whole-Iran download is many calls, not one copy)

    def __init__(self, path: Path):
        self._file = open(path, "rb", buffering=0)   # noqa: SIM115 (closed with this object)
        self._fd = self._file.fileno()
        self._size = os.fstat(self._fd).st_size

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, span: slice) -> bytes:
        start, stop, _ = span.indices(self._size)
        return self._read(start, stop)

    def _read(self, start: int, stop: int) -> bytes:
        want = max(0, stop - start)
        data = os.pread(self._fd, want, start)
        while len(data) < want:    # a regular file gives all it has; a short read means it shrank
            more = os.pread(self._fd, want - len(data), start + len(data))
            if not more:
                raise OSError(f"{self._file.name}: {want - len(data)} bytes missing at {start + len(data)}")
            data += more
        return data

    def pieces(self, starts: np.ndarray, ends: np.ndarray) -> list[bytes]:
        """``[data[a:b] for a, b in zip(starts, ends)]``, in as few reads as the pieces' nearness allows."""
        n = len(starts)
        order = np.argsort(starts, kind="stable").tolist()
        lo_of, hi_of = starts.tolist(), ends.tolist()
        out: list[bytes] = [b""] * n
        k = 0
        while k < n:
            first = order[k]
            lo, hi, j = lo_of[first], hi_of[first], k
            while j + 1 < n and lo_of[order[j + 1]] - hi <= self.GAP and hi_of[order[j + 1]] - lo <= self.MOST:
                j += 1
                hi = max(hi, hi_of[order[j]])
            data = self._read(lo, hi)
            for m in order[k:j + 1]:
                out[m] = data[lo_of[m] - lo:hi_of[m] - lo]
            k = j + 1
        return out


def prune(folder: Path, pattern: str, keep: int) -> None:
    """Remove all but the ``keep`` newest files matching ``pattern`` (a process still mapping a removed
    one keeps its pages)."""
    files = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        with contextlib.suppress(OSError):
            old.unlink()
