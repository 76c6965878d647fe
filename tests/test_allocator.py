"""The allocator of a serving process (issue 16: memory flat under load): a dataset's load leaves no holes in
the heap for the requests to fault in again, and the requests' own arrays stay in the heap, where they are
fast. Run in a fresh interpreter each: the settings are the process's own."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys

import pytest

try:
    ctypes.CDLL("libc.so.6").mallinfo2  # noqa: B018 - glibc 2.33 or later: the heap's figures
except (OSError, AttributeError):
    pytest.skip("glibc's mallinfo2 is needed to read the heap", allow_module_level=True)

SCRIPT = """
import ctypes, json, sys
from coopgis import loading

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    loading.tune_malloc()
# a load: blocks that stay (an index's pieces) made between passing buffers of 100 KB (a column read, a sort)
kept, passing = [], []
for _ in range(2000):
    passing.append(bytearray(100_000))
    kept.append(bytearray(2_000))
del passing
loading.trim_heap()
after_load = libc.mallinfo2()
loading.malloc_loading(False)   # warm: serving
mapped = libc.mallinfo2().hblks
arrays = [bytearray(100_000) for _ in range(400)]   # requests' arrays: more than the heap has free
print(json.dumps({"free_after_load": after_load.fordblks, "new_mappings": libc.mallinfo2().hblks - mapped}))
"""


def _heap(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_load_leaves_no_holes_and_requests_arrays_stay_in_the_heap():
    tuned, untuned = _heap("tuned"), _heap("untuned")
    # glibc's defaults keep the passing buffers' 200 MB as free heap between the blocks that stay
    assert untuned["free_after_load"] > 100_000_000
    # loaded as `coopgis serve` loads: a passing buffer has a mapping of its own, handed back when freed
    # (unless the heap's free top, at most 8 MiB, held it)
    assert tuned["free_after_load"] < untuned["free_after_load"] / 10
    # once serving, a request's 100 KB arrays are cut from the heap, not mapped one by one (twice as slow)
    assert tuned["new_mappings"] == 0

