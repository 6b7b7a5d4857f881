"""Templates: read once when this module is imported (no file I/O in the event loop), rendered
with autoescaping, and the filters the pages share (exact money, times, tokens)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from switchboard.money import nano_to_usd_str

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def _load() -> dict[str, str]:
    return {
        str(path.relative_to(TEMPLATES)): path.read_text(encoding="utf-8")
        for path in sorted(TEMPLATES.rglob("*.html"))
    }


def usd(nano: int | None) -> str:
    """Exact dollars from nano-USD, trailing zeros trimmed to cents: '$0.0000123', '$12.50'."""
    if nano is None:
        return "-"
    text = nano_to_usd_str(nano)
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"${whole}.{fraction}"


def when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def number(value: int | float | None) -> str:
    return "-" if value is None else f"{value:,}"


def to_json(value: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` block: '<', '>' and '&' escaped so the
    data can never close the script element."""
    text = json.dumps(value, default=str, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # noqa: S704 — escaped above for a script element


def next_page(path: str, filters: Mapping[str, str | None], cursor: str | None) -> str | None:
    """The link to the page after this one: the same filters (empty ones left out), the next
    cursor; None on the last page."""
    if cursor is None:
        return None
    query = {name: value for name, value in filters.items() if value} | {"cursor": cursor}
    return f"{path}?{urlencode(query)}"


def pretty(value: Any) -> str:
    return json.dumps(value, default=str, indent=2, ensure_ascii=False)


ENV = jinja2.Environment(
    loader=jinja2.DictLoader(_load()),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(usd=usd, when=when, number=number, to_json=to_json, pretty=pretty)


def render(
    request: Request,
    name: str,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    context.setdefault("user", getattr(request.state, "console_user", None))
    context["request"] = request
    html = ENV.get_template(name).render(context)
    return HTMLResponse(html, status_code=status_code, headers=headers)
