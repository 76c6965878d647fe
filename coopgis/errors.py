"""Bad input, said for the person who gave it: the core raises :class:`InputError`, the API answers 400.

The message is written for a person (a field officer, a clerk, a GIS analyst), names
the value and says what would be right; it never carries an exception's text.

Not here: HTTP statuses, headers and problem+json (``api/errors.py``).
"""

from __future__ import annotations


class InputError(Exception):
    """A value that cannot be used; ``detail`` says why, ``title`` names the kind of problem."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, title: str | None = None, detail_fa: str | None = None, **extra: object):
        super().__init__(detail)
        self.detail = detail
        self.detail_fa = detail_fa      # the same in Persian, for browsers and clients that prefer Persian
        if title is not None:
            self.title = title
        self.extra = extra
