"""Inline SVG pictures for the evaluation page (no plotting library needed)."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from .scoring import PAGING_LEVELS, Label, parse_ts

COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a")
INCIDENT = "#d62728"
BENIGN = "#8c8c8c"


def _open(width: int, height: int) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">')


def _legend(systems: list[str], x: float, y: float) -> str:
    return "".join(f'<rect x="{x}" y="{y + 16 * i}" width="10" height="10" '
                   f'fill="{COLOURS[i % len(COLOURS)]}"/>'
                   f'<text x="{x + 14}" y="{y + 9 + 16 * i}">{html.escape(s)}</text>'
                   for i, s in enumerate(systems))


def recall_chart(results: dict[str, dict[str, Any]], width: int = 960, height: int = 360) -> str:
    """Grouped bars: recall per incident kind, one bar per system (a thin stub marks a recall of 0)."""
    kinds = sorted({k for r in results.values() for k in r["recall_by_kind"]})
    left, right, bottom, top = 50, 170, 100, 15
    plot_h = height - bottom - top
    group = (width - left - right) / max(1, len(kinds))
    bar = group * 0.8 / max(1, len(results))
    parts = [_open(width, height)]
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{frac:.2f}</text>')
    for i, kind in enumerate(kinds):
        x0 = left + i * group + group * 0.1
        for j, (system, r) in enumerate(results.items()):
            rec = r["recall_by_kind"].get(kind, {}).get("recall") or 0.0
            h = max(1.5, plot_h * rec)
            parts.append(f'<rect x="{x0 + j * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar - 1:.1f}" '
                         f'height="{h:.1f}" fill="{COLOURS[j % len(COLOURS)]}"><title>'
                         f'{html.escape(system)} / {kind}: recall {rec:.2f}</title></rect>')
        cx, cy = x0 + group * 0.4, top + plot_h + 12
        parts.append(f'<text x="{cx:.1f}" y="{cy}" text-anchor="end" transform="rotate(-35 {cx:.1f} {cy})">'
                     f'{kind}</text>')
    parts.append(_legend(list(results), width - right + 15, top))
    parts.append("</svg>")
    return "".join(parts)


def timeline(alerts: dict[str, list[dict[str, Any]]], labels: list[Label], start: float, end: float,
             truth: Callable[[dict[str, Any]], bool] = lambda a: True, width: int = 960) -> str:
    """One thin row per labelled kind (incidents red, benign shifts grey), then one row of paging
    alerts per system: tall coloured ticks match an incident, short grey ticks are false pages."""
    kinds = sorted({(lab.label != "incident", lab.kind) for lab in labels})
    left, kind_h, sys_h = 190, 14, 30
    sys_top = kind_h * len(kinds) + 8
    height = sys_top + sys_h * len(alerts) + 22
    span = max(1.0, end - start)

    def x(t: float) -> float:
        return left + (width - left - 10) * min(1.0, max(0.0, (t - start) / span))

    parts = [_open(width, height)]
    row_of = {kind: i for i, (_, kind) in enumerate(kinds)}
    for i, (benign, kind) in enumerate(kinds):
        parts.append(f'<text x="{left - 6}" y="{i * kind_h + 11}" text-anchor="end" font-size="10" '
                     f'fill="{BENIGN if benign else INCIDENT}">{kind}</text>')
    for lab in labels:
        colour = INCIDENT if lab.label == "incident" else BENIGN
        x0, x1, y = x(lab.start), x(lab.end), row_of[lab.kind] * kind_h + 2
        parts.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(3.0, x1 - x0):.1f}" height="{kind_h - 4}" '
                     f'fill="{colour}" opacity="0.75"><title>{lab.kind} ({lab.label_id}): '
                     f'{html.escape(", ".join(sorted(lab.principals))[:200])}</title></rect>')
        if lab.label == "incident":
            parts.append(f'<line x1="{x0:.1f}" x2="{x0:.1f}" y1="{y}" y2="{height - 20}" stroke="{INCIDENT}" '
                         f'stroke-opacity="0.2"/>')
    for i, (system, items) in enumerate(alerts.items()):
        y = sys_top + i * sys_h
        colour = COLOURS[i % len(COLOURS)]
        parts.append(f'<text x="{left - 6}" y="{y + 18}" text-anchor="end" fill="{colour}">'
                     f'{html.escape(system)}</text><line x1="{left}" x2="{width - 10}" y1="{y + 14}" '
                     f'y2="{y + 14}" stroke="#eee"/>')
        for a in items:
            if a.get("level") in PAGING_LEVELS:
                xa = x(parse_ts(a["ts"]))
                tall = truth(a)
                y0, y1 = (y + 2, y + 26) if tall else (y + 9, y + 19)
                parts.append(f'<line x1="{xa:.1f}" x2="{xa:.1f}" y1="{y0}" y2="{y1}" '
                             f'stroke="{colour if tall else "#bbb"}" stroke-width="{2 if tall else 1}"/>')
    for d in range(int(span // 86400) + 1):
        parts.append(f'<text x="{x(start + d * 86400):.1f}" y="{height - 6}" text-anchor="middle" '
                     f'fill="#666">d{d}</text>')
    parts.append("</svg>")
    return "".join(parts)


def severity_histograms(results: dict[str, dict[str, Any]], width: int = 960, row_h: int = 70) -> str:
    """Per system, pages per severity bin from 50 to 100: true pages up (coloured), false pages down (grey)."""
    left, right = 190, 20
    height = row_h * len(results) + 24
    parts = [_open(width, height)]
    for i, (system, r) in enumerate(results.items()):
        hist = r.get("severity_histogram", {"true": [], "false": []})
        bins = max(1, len(hist["true"]))
        top = max([1, *hist["true"], *hist["false"]])
        mid = i * row_h + row_h / 2
        step = (width - left - right) / bins
        colour = COLOURS[i % len(COLOURS)]
        parts.append(f'<text x="{left - 6}" y="{mid + 4:.1f}" text-anchor="end" fill="{colour}">'
                     f'{html.escape(system)}</text><line x1="{left}" x2="{width - right}" y1="{mid:.1f}" '
                     f'y2="{mid:.1f}" stroke="#999"/>')
        for b in range(bins):
            for count, sign, fill in ((hist["true"][b], -1, colour), (hist["false"][b], 1, BENIGN)):
                h = (row_h / 2 - 4) * count / top
                y = mid - h if sign < 0 else mid
                parts.append(f'<rect x="{left + b * step + 1:.1f}" y="{y:.1f}" width="{step - 2:.1f}" '
                             f'height="{h:.1f}" fill="{fill}"><title>{count} {"true" if sign < 0 else "false"} '
                             f'pages, severity {50 + 50 * b / bins:.0f}-{50 + 50 * (b + 1) / bins:.0f}</title></rect>')
    for b in range(0, 11):
        x = left + (width - left - right) * b / 10
        parts.append(f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" fill="#666">{50 + 5 * b}</text>')
    parts.append("</svg>")
    return "".join(parts)
