"""HTML views for people: Jinja2 templates with autoescaping, Persian and right-to-left.

Every value that came from the registry is escaped by Jinja2; templates never
mark user text as safe.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from coopgis.api.links import base_url
from coopgis.dataset import ATTRIBUTION, COLLECTIONS
from coopgis.labels import fa_number, fa_value, field_label
from coopgis.text import to_persian_digits

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

def make_templates() -> Environment:
    """The Jinja2 environment of the HTML views (autoescaped); one per app, kept in ``app.state.templates``."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["fa"] = lambda v: "" if v is None else to_persian_digits(f"{v:,}" if isinstance(v, int) else v)
    env.filters["cell"] = lambda v: "" if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v
    env.filters["fa_value"] = lambda v, name, provinces=None: fa_value(name, v, provinces)
    env.filters["fa_number"] = fa_number
    env.globals.update(ATTRIBUTION=ATTRIBUTION, COLLECTIONS=COLLECTIONS, field_label=field_label)
    return env


def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    base = base_url(request)
    html = request.app.state.templates.get_template(template).render(base=base, request=request, **context)
    return HTMLResponse(html, status_code=status)
