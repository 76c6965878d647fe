"""Several worker processes that share one loaded dataset: ``coopgis serve --workers N`` on the file store.

The supervisor binds the port, loads the dataset and warms it (tile index, features, geocoder, search
and nearest indexes) once, freezes the garbage collector, then forks the workers. What the workers only
read stays one copy in memory, shared copy-on-write: numpy arrays, Arrow buffers, the mapped feature
files, and most Python objects (a page is copied only when a worker writes to it, which a frozen
collector no longer does). Each worker then serves the shared socket with uvicorn, follows the store
on its own (a new ingest is loaded by each worker: shared again at the next start), and a worker that
dies is forked again from the supervisor's copy (it then catches up with the store like any worker).

Not here: the app (``app.py``); the database store keeps uvicorn's own workers, which each open their
connections (a connection must not be shared by forked processes).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import time

from coopgis.settings import ServiceSettings

log = logging.getLogger("coopgis")
RESPAWN_PAUSE_S = 1.0      # between a worker's death and its replacement (a crash loop stays slow)


def run_workers(settings: ServiceSettings) -> None:
    """Serve ``settings.workers`` forked workers from one warmed app until SIGTERM or SIGINT."""
    import uvicorn

    from coopgis.app import _warm, create_app, server_config

    gc.disable()                      # no collection moves the loaded objects' pages before the fork
    config = server_config(settings, app=None)
    sock = config.bind_socket()       # bound first: connections wait in the backlog during the warm-up
    started = time.perf_counter()
    app = create_app(settings)
    _warm(app)
    config = server_config(settings, app=app)
    print(f"coopgis: dataset loaded and warmed in {time.perf_counter() - started:.1f} s; "
          f"starting {settings.workers} workers that share it", file=sys.stderr)
    gc.freeze()                       # the loaded objects stay out of every later collection

    children: dict[int, float] = {}
    stopping = False

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:                  # the worker
            code = 0
            try:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                gc.enable()
                uvicorn.Server(config).run(sockets=[sock])
            except BaseException:     # noqa: BLE001 - a worker never returns into the supervisor's loop
                log.exception("worker %s failed", os.getpid())
                code = 1
            finally:
                os._exit(code)
        children[pid] = time.monotonic()

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):   # already gone
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(settings.workers):
        spawn()
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if children.pop(pid, None) is None:
            continue
        if not stopping:
            log.error("worker %s ended (%s); starting another", pid, _ended(status))
            time.sleep(RESPAWN_PAUSE_S)
            if not stopping:
                spawn()
    sock.close()


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}"
