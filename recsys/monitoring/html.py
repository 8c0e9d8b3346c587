"""Minimal self-contained HTML for the job reports: readable offline, no scripts, no external assets."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f3f3f3; } td.text { text-align: left; }
.ok { background: #e6f4ea; } .warn { background: #fff4d6; } .alarm { background: #fde2e1; }
.insufficient { background: #eeeeee; }
"""

STATUS_CLASSES = ("ok", "warn", "alarm", "insufficient")


def cell(value: Any, digits: int = 4) -> str:
    """A table cell's text: numbers rounded, missing values as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.{digits}g}" if abs(value) < 1e6 else f"{value:.3e}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], status_column: int | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cls = ""
        if status_column is not None and str(row[status_column]) in STATUS_CLASSES:
            cls = f' class="{row[status_column]}"'
        body.append(f"<tr{cls}>{''.join(_td(v) for v in row)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _td(value: Any) -> str:
    align = ' class="text"' if isinstance(value, str) else ""  # text left, numbers right
    return f"<td{align}>{html.escape(cell(value))}</td>"


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def heading(text: str) -> str:
    return f"<h2>{html.escape(text)}</h2>"


def page(title: str, sections: Iterable[str]) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>"
    )
