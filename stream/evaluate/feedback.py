"""``privwatch feedback-eval DIR``: does analyst feedback cut false pages without losing incidents?

Replays a labelled stream twice. The first pass is privwatch as is. For every false page in the
first half of the scored period (after the warm-up week, as ``evaluate`` counts), an analyst's
signed ``false_positive`` verdict (scope: the detector, for the principal, 30 days) arrives
``triage_delay_s`` of event time later; the second pass replays the same stream with those verdicts
checked as the service checks them (:mod:`stream.feedback.verify`) and taking effect when event
time reaches them. Reported: false
pages in the second half with and without feedback, and incident recall.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from detectors.calibrate import PAGING_LEVELS
from detectors.engine import Engine
from stream.evaluate.runner import _load
from stream.evaluate.scoring import WARMUP_S, Label, LabelIndex, StreamStats, is_true_page, parse_ts, score
from stream.feedback.analysts import parse_analysts
from stream.feedback.replayed import ReplayFeedback
from stream.feedback.signing import MAX_EXPIRY_DAYS, generate, public_text, sign, verdict_record
from stream.feedback.verify import VerdictChecker
from stream.replay.replay import replay_lines

#: the simulated analyst of the experiment, her key made afresh for each run
ANALYST = "eval-analyst"


def false_page_verdicts(alerts: list[dict[str, Any]], index: LabelIndex, until: float, triage_delay_s: float,
                        key: Ed25519PrivateKey, key_id: str) -> list[bytes]:
    """What an analyst would send back: a signed false_positive verdict on the detector for the principal
    (30 days), for each false page before ``until``, signed ``triage_delay_s`` after it."""
    verdicts = []
    for alert in alerts:
        ts = parse_ts(alert["ts"])
        if alert["level"] in PAGING_LEVELS and ts < until and not is_true_page(alert, index):
            record = verdict_record(alert["alert_id"], "false_positive", "detector", ANALYST, key_id,
                                    ts + triage_delay_s, days=MAX_EXPIRY_DAYS, note="feedback-eval")
            verdicts.append(orjson.dumps(sign(record, key)))
    return verdicts


def signed_feedback(verdicts: list[bytes], key: Ed25519PrivateKey, key_id: str, alert_key: bytes) -> ReplayFeedback:
    """The verdicts as the service would check them: one configured analyst holding ``key``."""
    analysts = parse_analysts(f'[[analyst]]\nname = "{ANALYST}"\n'
                              f'keys = [{{id = "{key_id}", public_key = "{public_text(key)}"}}]\n')
    return ReplayFeedback(verdicts, VerdictChecker(analysts, alert_key))


def _false_pages_after(alerts: list[dict[str, Any]], index: LabelIndex, since: float) -> int:
    return sum(1 for a in alerts if a["level"] in PAGING_LEVELS and parse_ts(a["ts"]) >= since
               and not is_true_page(a, index))


def feedback_experiment(directory: Path, triage_delay_s: float = 3600.0) -> dict[str, Any]:
    lines, events, raw_labels, meta = _load(directory)
    labels = [Label.from_dict(d) for d in raw_labels]
    stats = StreamStats.from_events(events, parse_ts(meta["start"]) if "start" in meta else None)
    index = LabelIndex(labels)
    # halves of the scored period (false pages are counted from a week in, as in `evaluate`)
    scored_from = stats.start + WARMUP_S
    middle = scored_from + (stats.end - scored_from) / 2
    key, key_id, alert_key = generate(), "eval-key", secrets.token_bytes(32)
    before = replay_lines(lines, Engine(alert_key=alert_key)).alerts
    verdicts = false_page_verdicts(before, index, middle, triage_delay_s, key, key_id)
    feedback = signed_feedback(verdicts, key, key_id, alert_key)
    after = replay_lines(lines, feedback=feedback).alerts
    without, with_ = _false_pages_after(before, index, middle), _false_pages_after(after, index, middle)
    return {
        "verdicts": len(verdicts),
        "verdicts_applied": sum(feedback.applied.values()),
        "verdicts_refused": dict(feedback.refused),
        "second_half_false_pages": {"without_feedback": without, "with_feedback": with_},
        "reduction_factor": round(without / with_, 2) if with_ else None,
        "recall": {"without_feedback": score(before, labels, stats)["recall"],
                   "with_feedback": score(after, labels, stats)["recall"]},
    }


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("feedback-eval", help="measure what analyst feedback does to false pages")
    p.add_argument("directory", type=Path, help="a `privwatch simulate` output directory")
    p.add_argument("--triage-delay-s", type=float, default=3600.0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = feedback_experiment(args.directory, args.triage_delay_s)
    (args.directory / "feedback-evaluation.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    fp = result["second_half_false_pages"]
    print(f"verdicts fed back: {result['verdicts']} signed, {result['verdicts_applied']} applied\n"
          f"false pages in the second half: {fp['without_feedback']} without feedback, "
          f"{fp['with_feedback']} with (factor {result['reduction_factor']})\n"
          f"incident recall: {result['recall']['without_feedback']} without, "
          f"{result['recall']['with_feedback']} with", file=sys.stdout)
    return 0
