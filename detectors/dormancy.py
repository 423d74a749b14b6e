"""Dormant accounts waking up: a principal silent for ``min_silence_s`` of event time touches
confidential or restricted data.

The last-seen map is the detector's own, with a long TTL (``ttl_s``), because the engine forgets
idle principals after 45 days and dormancy is about exactly those. Each entry is a tuple of five
numbers: last event time, and hashes of the last device, country and IP /24, so a wake-up from the
principal's own laptop and office scores lower than one from somewhere new, and the time it woke
up (for a day, the silence stays on record until it touches sensitive data).
"""

from __future__ import annotations

from detectors.base import Detector, Finding, Profile
from detectors.compact import DAY_S, h32
from detectors.events import ACCESS, Event


def _h(value: str | None) -> int:
    return h32(value) if value else 0


class Dormancy(Detector):
    """Flags the first sensitive access after a long silence; needs no engine history."""

    name = "dormancy"
    per_principal = ("last_",)

    def __init__(
        self,
        min_silence_s: float = 2_592_000.0,  # 30 days (a literal: see Detector._get_params)
        ttl_s: float = 34_560_000.0,  # 400 days
        min_rank: int = 2,
        new_context_min_severity: float = 65.0,
    ):
        self.min_silence_s = min_silence_s
        self.ttl_s = ttl_s
        self.min_rank = min_rank
        self.new_context_min_severity = new_context_min_severity
        #: principal -> (last event time before any wake-up, device, country, network hashes, wake-up time)
        self.last_: dict[str, tuple[float, int, int, int, float]] = {}
        self._next_prune = 0.0

    def score_one(self, event: Event, profile: Profile) -> Finding | None:
        last = self.last_.get(event.principal_id)
        if last is None or event.kind != ACCESS or event.sensitivity_rank < self.min_rank:
            return None
        silence = (last[4] or event.ts) - last[0]
        if silence < self.min_silence_s:
            return None
        new = [
            name
            for name, old, value in (
                ("device", last[1], event.device_id),
                ("country", last[2], event.country),
                ("network", last[3], event.context_values[1]),
            )
            if value and old and _h(value) != old
        ]
        days = silence / DAY_S
        score = days / 30.0 * (1.0 + len(new)) * (1.5 if event.sensitivity == "restricted" else 1.0)
        return Finding(
            detector=self.name,
            event=event,
            score=score,
            title=f"Dormant account active again after {days:.0f} days",
            reasons=[
                f"no activity for {days:.0f} days (threshold {self.min_silence_s / DAY_S:.0f}); "
                f"now {event.action} on {event.sensitivity} {event.resource_id}",
                "different from the last activity: "
                + (", ".join(new) if new else "nothing (same device, country and network)"),
            ],
            evidence_event_ids=[event.event_id],
            baseline={"silent_days": round(days, 1), "min_silent_days": self.min_silence_s / DAY_S},
            min_severity=self.new_context_min_severity if new else 0.0,
            needs_history=False,
        )

    def learn_one(self, event: Event, profile: Profile, flagged: bool = False) -> None:
        if event.kind == ACCESS:
            last = self.last_.get(event.principal_id)
            if last is not None and not last[4] and event.ts - last[0] < 3600.0:
                pass  # active right now: an hourly refresh of the entry is precise enough
            elif (
                last is not None
                and event.ts - last[0] >= self.min_silence_s
                and event.sensitivity_rank < self.min_rank
                and event.ts - (last[4] or event.ts) < DAY_S
            ):
                # awake but not yet on sensitive data: keep the silence on record for a day
                self.last_[event.principal_id] = (*last[:4], last[4] or event.ts)
            else:
                self.last_[event.principal_id] = (
                    event.ts,
                    _h(event.device_id),
                    _h(event.country),
                    _h(event.context_values[1]),
                    0.0,
                )
        if event.ts >= self._next_prune:
            horizon = event.ts - self.ttl_s
            self.last_ = {pid: v for pid, v in self.last_.items() if v[0] >= horizon}
            self._next_prune = event.ts + DAY_S

    def forget(self, principal_id: str) -> None:
        """Idle principals are exactly what this detector watches: kept until ``ttl_s`` passes."""

    def n_principals(self) -> int:
        return len(self.last_)
