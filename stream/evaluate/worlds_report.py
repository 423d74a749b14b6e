"""The report of a many-world evaluation: text tables (every system side by side) and an HTML page."""

from __future__ import annotations

import html
from typing import Any

from .report import _fmt, _table
from .svg import COLOURS, recall_chart, severity_histograms


def _share(row: dict[str, Any] | None) -> str:
    """``0.933 14/15 [0.70-0.99]``: recall, counts and the 95% Wilson interval."""
    if not row or not row.get("incidents"):
        return "-"
    ci = row.get("ci") or row.get("recall_ci") or [0.0, 0.0]
    return f"{row['recall']:.3f} {row['detected']}/{row['incidents']} [{ci[0]:.2f}-{ci[1]:.2f}]"


def _summary(results: dict[str, dict[str, Any]]) -> str:
    header = ["system", "recall [95% CI]", "precision", "false pages/1k p-d", "after week one",
              "median delay min", "pages", "critical share", "severity AUC"]
    rows = [[name, _share(r), _fmt(r["precision"]), _fmt(r["false_pages_per_1k_principal_days"]),
             _fmt(r["false_pages_per_1k_principal_days_after_week_one"]), _fmt(r["delay_minutes"]["median"]),
             _fmt(r["paging_alerts"]), _fmt(r["level_shares"]["critical"]), _fmt(r["severity_auc"])]
            for name, r in results.items()]
    return _table(header, rows)


def _by(results: dict[str, dict[str, Any]], key: str, title: str) -> str:
    names = sorted({k for r in results.values() for k in r[key]})
    rows = [[name, *[_share(r[key].get(name)) for r in results.values()]] for name in names]
    return _table([title, *results], rows)


def _band_delays(results: dict[str, dict[str, Any]]) -> str:
    names = sorted({k for r in results.values() for k in r["recall_by_band"]})
    rows = [[name, *[_fmt(r["recall_by_band"].get(name, {}).get("delay_median_min")) for r in results.values()]]
            for name in names]
    return _table(["median delay (min) by band", *results], rows)


def _levels(results: dict[str, dict[str, Any]]) -> str:
    rows = [[name, *[_fmt(r["level_shares"][lv]) for lv in ("critical", "high", "medium")]]
            for name, r in results.items()]
    return _table(["share of pages per level", "critical", "high", "medium"], rows)


def _pages(results: dict[str, dict[str, Any]], key: str, title: str) -> str:
    names = sorted({k for r in results.values() for k in r[key]})

    def cell(r: dict[str, Any], name: str) -> str:
        value = r[key].get(name, 0)
        return f"{value['true']}/{value['false']}" if isinstance(value, dict) else str(value)

    return _table([title, *results], [[name, *[cell(r, name) for r in results.values()]] for name in names])


def _worlds(worlds: list[dict[str, Any]]) -> str:
    systems = list(worlds[0]["results"]) if worlds else []
    header = ["seed", "principals", "days", "events", "incidents",
              *[f"{s}: recall/precision/fp1k" for s in systems]]
    rows = [[str(w["seed"]), _fmt(w["principals"]), _fmt(w["days"]), _fmt(w["events"]), _fmt(w["incidents"]),
             *[f"{_fmt(r['recall'])}/{_fmt(r['precision'])}/{_fmt(r['false_pages_per_1k_principal_days'])}"
               for r in w["results"].values()]] for w in worlds]
    return _table(header, rows)


def text_report(payload: dict[str, Any]) -> str:
    """Every table of a many-world evaluation."""
    results = payload["results"]
    return "\n\n".join([
        f"{payload['title']}: seeds {', '.join(map(str, payload['seeds']))}",
        _summary(results),
        _by(results, "recall_by_kind", "recall by incident kind"),
        _by(results, "recall_by_band", "recall by intensity band"),
        _band_delays(results),
        _levels(results),
        _pages(results, "pages_by_detector", "pages by detector (true/false)"),
        _pages(results, "false_pages_by_benign_kind", "false pages by benign shift"),
        _worlds(payload["worlds"]),
    ])


def html_page(payload: dict[str, Any]) -> str:
    """One self-contained page: recall per kind and per band, severity of true and false pages, numbers."""
    results = payload["results"]
    title = f"privwatch evaluation: {payload['title']}"
    legend = " ".join(f'<span style="color:{COLOURS[i % len(COLOURS)]}">&#9632; {html.escape(s)}</span>'
                      for i, s in enumerate(results))
    bands = {name: {"recall_by_kind": r["recall_by_band"]} for name, r in results.items()}
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em;max-width:1000px}pre{background:#f6f6f6;"
            "padding:1em;overflow-x:auto}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{legend}</p>"
            "<h2>Recall per incident kind, pooled over the worlds</h2>" + recall_chart(results) +
            "<h2>Recall per intensity band</h2>" + recall_chart(bands, height=300) +
            "<h2>Severity of pages</h2><p>Per system, pages per severity bin (50 to 100): true pages above the "
            "line, false pages below it.</p>" + severity_histograms(results) +
            f"<h2>Numbers</h2><pre>{html.escape(text_report(payload))}</pre></body></html>")
