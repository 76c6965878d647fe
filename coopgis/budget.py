"""A time budget for one piece of heavy work, checked between its steps.

The HTTP layer starts a budget when a heavy request gets its turn
(``COOPGIS_REQUEST_BUDGET_SECONDS``); long loops (the chunks of a download, the
rows of an HTML page) call :func:`check`, which raises :class:`BudgetExceeded`
once the budget is spent. The budget lives in a context variable, so it follows
the request into worker threads and ends with it; outside a request there is none.

Not here: deciding which requests are heavy (``api/limits.py``).
"""

from __future__ import annotations

import time
from contextvars import ContextVar

_deadline: ContextVar[tuple[float, float] | None] = ContextVar("coopgis_budget", default=None)


class BudgetExceeded(Exception):
    """The work ran past its time budget."""

    def __init__(self, seconds: float):
        super().__init__(f"the work took longer than its budget of {seconds:g} s")
        self.seconds = seconds


def start(seconds: float) -> None:
    """Give the current request's work ``seconds`` from now."""
    _deadline.set((time.monotonic() + seconds, seconds))


def check() -> None:
    """Raise BudgetExceeded when the current budget (if any) is spent."""
    current = _deadline.get()
    if current is not None and time.monotonic() > current[0]:
        raise BudgetExceeded(current[1])
