"""The served dataset, from the store: built when none exists, loaded with its verified locations.

:func:`ensure_default_dataset` builds the embedded default (a labelled synthetic sample,
ingested) the first time; :func:`load_dataset` reads the store and applies the accepted
location reports, so ``coopgis serve``, ``coopgis render`` and the app factory serve the
same thing. :func:`location_layer` is the boundaries and geocoder they share.

Not here: the HTTP app (``app.py``), argument parsing (``cli.py``), ingest itself (``ingest.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from coopgis.boundaries import Boundaries, load_boundaries
from coopgis.corrections import apply_verified, learn_villages, villages_to_learn
from coopgis.dataset import Dataset
from coopgis.geocode import Geocoder
from coopgis.ingest import IngestResult, ingest, print_ingest_summary
from coopgis.location_reports import LocationReportLog
from coopgis.settings import Settings
from coopgis.store import FileStore

# glibc's M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_ARENA_MAX (malloc.h)
MMAP_THRESHOLD_OPTION, TRIM_THRESHOLD_OPTION, ARENA_MAX_OPTION = -3, -1, -8
LOADING_MMAP_THRESHOLD_BYTES = 64 * 1024   # while a dataset is read and warmed
SERVING_MMAP_THRESHOLD_BYTES = 1024 * 1024  # once it is served
TRIM_THRESHOLD_BYTES = 8 * 1024 * 1024
ARENAS = 2
_tuned = False   # tune_malloc has set the allocator up for a server


def location_layer(settings: Settings) -> tuple[Boundaries, Geocoder]:
    """The boundaries of ``settings`` (cached) and a geocoder over them."""
    b = load_boundaries(settings.boundaries, deprivation=settings.deprivation, cache_dir=settings.cache_dir)
    return b, Geocoder(b)


def run_ingest(path: Path, store: FileStore, boundaries: Boundaries, geocoder: Geocoder, progress: bool,
               **checks) -> IngestResult:
    """:func:`coopgis.ingest.ingest`, with a progress bar on stderr when ``progress``."""
    if not progress:
        return ingest(path, store, boundaries, geocoder, **checks)
    from tqdm import tqdm

    bar = tqdm(total=None, unit=" rows", desc="geocoding", file=sys.stderr, leave=False)
    try:
        return ingest(path, store, boundaries, geocoder, progress=bar.update, **checks)
    finally:
        bar.close()


def ensure_default_dataset(settings: Settings, force: bool = False, out: TextIO | None = None) -> Path:
    """Build the embedded default dataset (a labelled synthetic sample, ingested) when none exists.

    The ingest summary is printed to ``out`` (standard output by default).
    """
    from coopgis.sample import generate_sample, write_sample

    store = FileStore(settings.data)
    if store.exists() and not force:
        return store.path
    boundaries, geocoder = location_layer(settings)
    settings.data.mkdir(parents=True, exist_ok=True)
    csv = settings.data / f"sample-{settings.sample_size}-synthetic.csv"
    print(f"building the default dataset: {settings.sample_size} synthetic cooperatives -> {settings.data}",
          file=sys.stderr)
    write_sample(generate_sample(settings.sample_size, seed=settings.sample_seed, boundaries=boundaries), csv)
    result = run_ingest(csv, store, boundaries, geocoder, progress=sys.stderr.isatty())
    print_ingest_summary(result.report, store.path, out or sys.stdout)
    return store.path


def load_dataset(settings: Settings, previous: Dataset | None = None,
                 log: LocationReportLog | None = None, store=None) -> Dataset:
    """The dataset of ``store`` (default: the folder ``settings.data``) with its verified locations applied.

    For the file store, the embedded default sample is built first when no dataset exists (a database
    without a dataset is a StoreError: nothing synthetic is put into a system of record). ``previous``
    lends its boundaries and geocoder, so a reload does not rebuild them; ``log`` is the app's
    location-report log (read afresh when not given).
    """
    if store is None:
        store = FileStore(settings.data)
    if isinstance(store, FileStore) and not store.exists():
        ensure_default_dataset(settings)
    frame, report = _preloaded(store) or store.read_with_ingest_report()
    accepted, _ = (log or store.report_log()).accepted()
    if previous is not None:
        boundaries, geocoder = previous.boundaries, previous.geocoder
        learn_villages(geocoder, frame, accepted)
        dataset = Dataset(apply_verified(frame, accepted, boundaries), boundaries, report, geocoder,
                          verified=accepted, feature_files=feature_folder(settings))
        dataset.lend_labels(previous)   # the place-name labels of the same boundaries
        return dataset
    # A first load: the geocoder (about 1.5 s at start-up) is made by the warm-up or the first request
    # that needs it, and then learns the verified villages.
    boundaries = load_boundaries(settings.boundaries, deprivation=settings.deprivation, cache_dir=settings.cache_dir)
    return Dataset(apply_verified(frame, accepted, boundaries), boundaries, report, verified=accepted,
                   villages=villages_to_learn(frame, accepted), feature_files=feature_folder(settings))


def feature_folder(settings: Settings) -> Path | None:
    """Where the served features are written once and read by every worker (None: not at all)."""
    return Path(settings.cache_dir) / "features" if settings.cache_dir else None


# ``coopgis serve`` checks the store by reading it, then serves it in the same process (its forked workers
# too): that read is handed to the app's first load (once, and only for the version it was read from).
_PRELOAD: dict[str, tuple] = {}


def check_store(store: FileStore) -> None:
    """Read the served pair once (a damaged file raises StoreError here), kept for the first load."""
    _PRELOAD[str(store.version_folder())] = store.read_with_ingest_report()


def tune_malloc() -> None:
    """glibc's allocator set for a long-lived server, loading its dataset (``coopgis serve`` does it first;
    ``malloc_loading(False)`` when the dataset is warm; each setting measured with ``benchmarks.memory``):

    - while a dataset is read and warmed, each block of 64 KiB or more gets a mapping of its
      own, returned to the system when it is freed. The start-up's passing arrays and buffers (the store
      read, the indexes' sorting, the geocoder's tables) otherwise leave holes between the blocks that stay:
      38 MB of free heap at 100,000 cooperatives. ``malloc_trim`` hands the holes' pages back, but the
      requests' small blocks are then cut from them all over again, and a worker under load kept about 40 MB
      more than after its warm-up. Loaded this way, the heap has no holes after the warm-up (0.2 MB free,
      was 38), and the curve of a mixed load is 2 points lower;
    - once served, each block of 1 MiB or more gets a mapping of its own: the requests' larger buffers (a page
      of polygons, the pieces of features read) stay out of the heap. By default the limit rises to 32 MiB as
      blocks are freed. A lower limit while serving (256 KiB) made the requests' own arrays mappings too:
      dashboard and statistics answers took twice as long;
    - the heap's free top is handed back past 8 MiB: at glibc's default (128 KiB) it would be handed back
      and taken again by nearly every request (10-20 % on each answer's time, measured);
    - at most 2 arenas (glibc's default: 8 per core), so the request threads share their free memory rather
      than each keeping a heap of its own (25 MB less after a mixed load with 1 worker at 100,000; the GIL
      lets one thread allocate at a time anyway)."""
    global _tuned
    _tuned = True
    malloc_loading(True)


def malloc_loading(loading: bool) -> None:
    """``tune_malloc``'s settings, with the limit for blocks of their own of a process loading a dataset
    (``loading``) or serving it. Nothing in a process that never called ``tune_malloc`` (a test's app):
    glibc's own policy stays."""
    import contextlib
    import ctypes

    if not _tuned:
        return
    with contextlib.suppress(OSError, AttributeError):   # not glibc: its own policy stays
        libc = ctypes.CDLL("libc.so.6")
        threshold = LOADING_MMAP_THRESHOLD_BYTES if loading else SERVING_MMAP_THRESHOLD_BYTES
        libc.mallopt(MMAP_THRESHOLD_OPTION, threshold)
        libc.mallopt(TRIM_THRESHOLD_OPTION, TRIM_THRESHOLD_BYTES)   # setting one fixes the other otherwise
        libc.mallopt(ARENA_MAX_OPTION, ARENAS)


def release_memory() -> None:
    """Hand freed memory back to the system: unreachable objects, Arrow's pool, glibc's free heap pages."""
    import gc

    import pyarrow

    gc.collect()
    pyarrow.default_memory_pool().release_unused()
    trim_heap()


def trim_heap() -> None:
    """Hand glibc's free heap pages back to the system, in every arena.

    glibc returns only the free top of a heap, and only past ``TRIM_THRESHOLD_BYTES``; the pages of the
    requests' passing buffers (pages of features, tiles being encoded) freed below a block still in use stay
    with the process. The server calls this four times a second (``app.HEAP_TRIM_SECONDS``), in a thread of
    its own: at 100,000 cooperatives under a mixed load, 0.9 ms (median; 6 ms at the 90th percentile)."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # not glibc: what is free stays with the process
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _preloaded(store) -> tuple | None:
    if not _PRELOAD or not isinstance(store, FileStore):
        return None
    pair = _PRELOAD.pop(str(store.version_folder()), None)
    _PRELOAD.clear()
    return pair
