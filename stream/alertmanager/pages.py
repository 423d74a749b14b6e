"""Which pages Alertmanager must hear about, and when: pure bookkeeping, no threads, no I/O.

A page is one incident (or a single paging alert), keyed by its incident id. Its ``endsAt`` comes
from the wall clock: the time its last update was delivered plus ``active_s``. It is never derived
from event time, so a page delivered during a catch-up over weeks of events, or hours after an
outage, is active when it arrives, and it is never resolved before it was delivered. Delivered pages
are re-posted every ``resend_s`` (with the same ``endsAt``) until then, so an Alertmanager that
restarted and lost them gets them back; after ``endsAt`` Alertmanager resolves them by itself. An
escalation changes a page's labels (its level) and so its fingerprint: the old fingerprint, if it
was delivered, is resolved explicitly.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from stream.alertmanager.mapping import key_of, labels_for

Fingerprint = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Page:
    doc: dict[str, Any]
    labels: dict[str, str]
    updates: int
    #: an update not yet accepted by Alertmanager
    dirty: bool = True
    #: wall-clock end of the last accepted post (0: never delivered)
    ends_at: float = 0.0
    next_resend: float = 0.0


@dataclass(frozen=True, slots=True)
class Post:
    """One alert to post: ``doc`` active until ``ends_at`` (an ``ends_at`` of now resolves it)."""

    key: str
    doc: dict[str, Any]
    ends_at: float
    resolve: bool = False


class Pages:
    """Pages by incident id, oldest update first, and the superseded fingerprints still to resolve."""

    def __init__(self, service: str, active_s: float, resend_s: float, max_pages: int = 100_000) -> None:
        self.service = service
        self.active_s = active_s
        self.resend_s = resend_s
        self.max_pages = max_pages
        self.pages: OrderedDict[str, Page] = OrderedDict()
        self.resolves: dict[Fingerprint, dict[str, Any]] = {}

    def take(self, doc: dict[str, Any]) -> bool:
        """Take an incident (or paging alert) document; False when an update of it at least as new is held."""
        key = key_of(doc)
        updates = int(doc.get("updates") or 1)
        labels = labels_for(doc, self.service)
        page = self.pages.pop(key, None)
        if page is not None and updates < page.updates:
            self.pages[key] = page  # an older update read after a newer one (another partition): keep the newer
            return False
        if page is not None and page.labels != labels and page.ends_at:
            self.resolves[fingerprint(page.labels)] = page.doc
        self.pages[key] = Page(doc, labels, updates)
        self._bound()
        return True

    def _bound(self) -> None:
        """Forget the oldest delivered pages beyond ``max_pages`` (Alertmanager ends them by their endsAt)."""
        excess = len(self.pages) - self.max_pages
        for key in [k for k, p in self.pages.items() if not p.dirty][:max(0, excess)]:
            del self.pages[key]

    def unsent(self) -> int:
        return sum(p.dirty for p in self.pages.values()) + len(self.resolves)

    def due(self, now: float) -> list[Post]:
        """What to post now: resolves of superseded fingerprints, new and updated pages, and re-sends."""
        posts = [Post(key_of(doc), doc, now, resolve=True) for doc in self.resolves.values()]
        for key, page in list(self.pages.items()):
            if page.dirty:
                posts.append(Post(key, page.doc, now + self.active_s))
            elif page.ends_at <= now:
                del self.pages[key]  # over: Alertmanager has resolved it by its endsAt
            elif now >= page.next_resend:
                posts.append(Post(key, page.doc, page.ends_at))
        return posts

    def delivered(self, posts: list[Post], now: float) -> None:
        """Alertmanager accepted ``posts`` (unless a newer update came meanwhile)."""
        for post in posts:
            if post.resolve:
                self.resolves.pop(fingerprint(labels_for(post.doc, self.service)), None)
                continue
            page = self.pages.get(post.key)
            if page is not None and page.doc is post.doc:
                page.dirty, page.ends_at, page.next_resend = False, post.ends_at, now + self.resend_s


def fingerprint(labels: dict[str, str]) -> Fingerprint:
    return tuple(sorted(labels.items()))
