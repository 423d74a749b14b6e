"""Presenting scores: a text table, ``evaluation.json`` and a self-contained HTML page with inline SVG."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from .scoring import Label
from .svg import COLOURS, recall_chart, timeline

COLUMNS = (("recall", "recall"), ("precision", "precision"),
           ("false_pages_per_1k_principal_days", "false pages/1k p-d"),
           ("delay_median", "median delay min"), ("paging_alerts", "paging alerts"))


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}" if v < 10 else f"{v:,.1f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _cell(result: dict[str, Any], key: str) -> Any:
    return result["delay_minutes"]["median"] if key == "delay_median" else result.get(key)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths, strict=True)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def text_report(results: dict[str, dict[str, Any]]) -> str:
    """The summary table and the per-kind recall table, as printed by ``privwatch evaluate``."""
    header = ["system", *[name for _, name in COLUMNS]]
    rows = [[system, *[_fmt(_cell(r, key)) for key, _ in COLUMNS]] for system, r in results.items()]
    kinds = sorted({k for r in results.values() for k in r["recall_by_kind"]})
    per_kind = [[kind, *[_fmt(r["recall_by_kind"].get(kind, {}).get("recall")) for r in results.values()]]
                for kind in kinds]
    benign = sorted({k for r in results.values() for k in r["false_pages_by_benign_kind"]})
    pages = [[kind, *[_fmt(r["false_pages_by_benign_kind"].get(kind, 0)) for r in results.values()]]
             for kind in benign]
    detectors = [[f"{system} / {det}", _fmt(c["true"]), _fmt(c["false"])]
                 for system, r in results.items() for det, c in r.get("pages_by_detector", {}).items()]
    return "\n\n".join([_table(header, rows),
                        _table(["recall by incident kind", *results], per_kind),
                        _table(["false pages by benign shift", *results], pages),
                        _table(["pages by detector", "true", "false"], detectors)])


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


def html_report(results: dict[str, dict[str, Any]], alerts: dict[str, list[dict[str, Any]]],
                labels: list[Label], start: float, end: float, title: str,
                truth: Callable[[dict[str, Any]], bool] = lambda a: True) -> str:
    """One self-contained page: summary tables and the two pictures."""
    legend = " ".join(f'<span style="color:{COLOURS[i % len(COLOURS)]}">&#9632; {html.escape(s)}</span>'
                      for i, s in enumerate(results))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em;max-width:1000px}pre{background:#f6f6f6;"
            "padding:1em}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{legend}</p>"
            "<h2>Recall per incident kind</h2>" + recall_chart(results) +
            "<h2>Timeline: paging alerts and labelled spans</h2><p>Red: incidents, grey bars: benign shifts. "
            "Tall coloured ticks: pages matching an incident; short grey ticks: false pages.</p>" +
            timeline(alerts, labels, start, end, truth) +
            f"<h2>Numbers</h2><pre>{html.escape(text_report(results))}</pre></body></html>")
