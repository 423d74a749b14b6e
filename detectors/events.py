"""The flat, typed event that every detector sees.

``stream`` decodes and validates contract documents and turns each into an :class:`Event`;
detectors never see Kafka records or JSON. Permission events are attributed to their *target*
(the principal that gains or loses the permission), so that one principal's access and permission
events share state and a partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from mypy_extensions import mypyc_attr

from detectors.compact import h32, h32_once, ip_prefix, tagged
from detectors.days import day_number, is_weekend, local_hour

ACCESS: Final = "access"
PERMISSION: Final = "permission"
#: a sign-in attempt: principal, outcome, network context, and ``method``/``mfa``/``application``
AUTHENTICATION: Final = "authentication"
#: every event kind, in the order the engine plans them
KINDS: Final = (ACCESS, PERMISSION, AUTHENTICATION)

SENSITIVITY_RANK: Final[dict[str | None, int]] = {
    None: 0, "public": 0, "internal": 1, "confidential": 2, "restricted": 3,
}
#: Data categories whose first touch pages even without history (special-category data, GDPR art. 9).
SPECIAL_CATEGORIES: Final = frozenset({"health", "minors", "biometric", "genetic"})
#: Hash namespaces (:func:`~detectors.compact.tagged`) of the network-context fields, in the order of
#: :attr:`Event.context_values` (as :attr:`Event.context_hashes` spells them out); the context and
#: service-misuse detectors share them.
CONTEXT_TAGS: Final = (1, 2, 3, 4)

_DERIVED = ("_context", "_context_hashes", "_resource_hash", "_day", "_hour", "_weekend", "_sensitive", "_subjects")


# Four items each, typed as tuples of any length: compiled, a fixed-length tuple type is a native struct,
# so every event's memo hit was unpacked into one and packed again, four new int objects and two tuples
# (about 2k instructions); a tuple of any length is passed through as it is.
_ContextValues = tuple[str | None, ...]
_ContextHashes = tuple[int | None, ...]
_SensitiveItems = tuple[tuple[str, str, int], ...]
#: Caches, not state (cleared when full; results never depend on them): a principal's context and
#: the data categories of a resource come back event after event.
_CONTEXT_MEMO: Final[dict[tuple[str | None, ...], tuple[_ContextValues, _ContextHashes]]] = {}
#: (country, device, agent, the memo's entry) of the last context seen with an IP
_LastContext = tuple[str | None, str | None, str | None, tuple[_ContextValues, _ContextHashes]]
#: IP -> the last context seen with it, checked first: a dictionary keyed by a string and three
#: comparisons, where a key of four strings is hashed anew each time (about 1.3k instructions a lookup)
_CONTEXT_BY_IP: Final[dict[str | None, _LastContext]] = {}
#: resource id -> (its categories, whether it is sensitive itself, the items): keyed by the id alone,
#: a string (a key of a tuple and a tuple was hashed anew on every event, about 1k instructions)
_SENSITIVE_MEMO: Final[dict[str, tuple[tuple[str, ...], bool, _SensitiveItems]]] = {}
#: ~0.5 KB per context entry: at most ~8 MB per process (50k entries measured +25 MB peak RSS in bench),
#: and ~0.1 KB per IP of the by-IP memo, which shares the entries
_MEMO_CAP: Final = 16_384


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    """Store ``value`` in one of this module's caches, emptied first when it holds :data:`_MEMO_CAP`."""
    if len(memo) >= _MEMO_CAP:
        memo.clear()
    memo[key] = value


def _context(
    country: str | None, ip: str | None, device: str | None, agent: str | None
) -> tuple[_ContextValues, _ContextHashes]:
    last = _CONTEXT_BY_IP.get(ip)
    if last is not None and last[0] == country and last[1] == device and last[2] == agent:
        return last[3]
    key = (country, ip, device, agent)
    known = _CONTEXT_MEMO.get(key)
    if known is None:
        network = ip_prefix(ip)
        hashes = (
            None if country is None else tagged(1, country),
            None if network is None else tagged(2, network),
            None if device is None else tagged(3, device),
            None if agent is None else tagged(4, agent),
        )
        known = ((country, network, device, agent), hashes)
        _remember(_CONTEXT_MEMO, key, known)
    _remember(_CONTEXT_BY_IP, ip, (country, device, agent, known))
    return known


def _sensitive_items(categories: tuple[str, ...], resource_id: str, sensitive: bool) -> _SensitiveItems:
    """Categories (namespace 1), then the resource (namespace 2) when it is ``sensitive`` itself."""
    known = _SENSITIVE_MEMO.get(resource_id)
    if known is not None and known[1] == sensitive and known[0] == categories:
        return known[2]
    items = tuple([("category", c, tagged(1, c)) for c in categories])
    if sensitive:
        items += (("resource", resource_id, tagged(2, resource_id)),)
    _remember(_SENSITIVE_MEMO, resource_id, (categories, sensitive, items))
    return items


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class _Derived:
    """Values several detectors derive from one event (hashes, local hour, day number), computed on
    first use and then shared: the same strings used to be hashed by three or four detectors per event.

    They live in slots outside the dataclass fields, so ``astuple``, ``==`` and ``replace`` see the
    event as it was built. Events are treated as immutable once built (detectors never write them).
    """

    __slots__ = _DERIVED
    _context: _ContextValues | None
    _context_hashes: _ContextHashes | None
    _resource_hash: int | None
    _day: int | None
    _hour: int | None
    _weekend: bool | None
    _sensitive: _SensitiveItems | None
    _subjects: tuple[int, ...] | None

    def _forget_derived(self) -> None:
        self._context = self._context_hashes = self._resource_hash = None
        self._day = self._hour = self._weekend = self._sensitive = self._subjects = None


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # see detectors/native.py
@dataclass(slots=True, init=False)
class Event(_Derived):
    """One access, permission or authentication (sign-in) event, flattened.

    ``ts`` is event time in seconds since the epoch (UTC); ``tz_offset_s`` is the offset the
    producer wrote, so hour-of-day features can use local time.

    >>> e = Event(kind="access", event_id="e1", ts=0.0, principal_id="u-1", action="export", records=5)
    >>> e.is_access, e.sensitivity_rank
    (True, 0)
    """

    # Field order is part of the interface: from_document (below) constructs events positionally.
    kind: str
    event_id: str
    ts: float
    principal_id: str
    principal_kind: str = "human"
    department: str | None = None
    role: str | None = None
    tz_offset_s: int = 0
    # access
    action: str = ""
    resource_id: str = ""
    resource_kind: str | None = None
    sensitivity: str | None = None
    categories: tuple[str, ...] = ()
    records: int = 0
    bytes: int = 0
    subjects: int = 0
    subject_refs: tuple[str, ...] = ()
    outcome: str = "allowed"
    ip: str | None = None
    country: str | None = None
    device_id: str | None = None
    user_agent: str | None = None
    purpose: str | None = None
    # permission
    actor_id: str | None = None
    actor_role: str | None = None
    actor_department: str | None = None
    change: str | None = None
    permission: str | None = None
    privileged: bool = False
    ticket: str | None = None
    # the people directory's admin flag of the actor (None: unknown; see detectors.compact.admin_status)
    actor_admin: bool | None = None
    # authentication
    method: str | None = None
    mfa: bool | None = None
    application: str | None = None

    # Written out rather than generated by ``dataclass``: the generated ``__init__`` is interpreted
    # Python even in the compiled build (about 10k instructions per event); this one compiles to a
    # native constructor. Same parameters, order and defaults as the fields above.
    def __init__(
        self, kind: str, event_id: str, ts: float, principal_id: str, principal_kind: str = "human",
        department: str | None = None, role: str | None = None, tz_offset_s: int = 0, action: str = "",
        resource_id: str = "", resource_kind: str | None = None, sensitivity: str | None = None,
        categories: tuple[str, ...] = (), records: int = 0, bytes: int = 0, subjects: int = 0,
        subject_refs: tuple[str, ...] = (), outcome: str = "allowed", ip: str | None = None,
        country: str | None = None, device_id: str | None = None, user_agent: str | None = None,
        purpose: str | None = None, actor_id: str | None = None, actor_role: str | None = None,
        actor_department: str | None = None, change: str | None = None, permission: str | None = None,
        privileged: bool = False, ticket: str | None = None, actor_admin: bool | None = None,
        method: str | None = None, mfa: bool | None = None, application: str | None = None,
    ) -> None:
        self.kind, self.event_id, self.ts, self.principal_id = kind, event_id, ts, principal_id
        self.principal_kind, self.department, self.role = principal_kind, department, role
        self.tz_offset_s, self.action, self.resource_id = tz_offset_s, action, resource_id
        self.resource_kind, self.sensitivity, self.categories = resource_kind, sensitivity, categories
        self.records, self.bytes, self.subjects, self.subject_refs = records, bytes, subjects, subject_refs
        self.outcome, self.ip, self.country, self.device_id = outcome, ip, country, device_id
        self.user_agent, self.purpose, self.actor_id, self.actor_role = user_agent, purpose, actor_id, actor_role
        self.actor_department, self.change, self.permission = actor_department, change, permission
        self.privileged, self.ticket, self.actor_admin = privileged, ticket, actor_admin
        self.method, self.mfa, self.application = method, mfa, application
        self._forget_derived()

    def __setstate__(self, state: tuple | dict) -> None:
        """Unpickle (also events pickled before the derived slots existed, or by the compiled build)."""
        self._forget_derived()
        for name, value in (state[1] if isinstance(state, tuple) else state).items():
            object.__setattr__(self, name, value)

    def _fill_context(self) -> tuple[_ContextValues, _ContextHashes]:
        pair = self._context, self._context_hashes = _context(self.country, self.ip, self.device_id, self.user_agent)
        return pair

    @property
    def context_values(self) -> _ContextValues:
        """(country, network /24 or /48, device, user agent): the network context of an access."""
        values = self._context
        return values if values is not None else self._fill_context()[0]

    @property
    def context_hashes(self) -> _ContextHashes:
        """:attr:`context_values` hashed in their :data:`CONTEXT_TAGS` namespaces (None where absent)."""
        hashes = self._context_hashes
        return hashes if hashes is not None else self._fill_context()[1]

    @property
    def resource_hash(self) -> int:
        """``h32(resource_id)``."""
        h = self._resource_hash
        if h is None:
            h = self._resource_hash = h32(self.resource_id)
        return h

    @property
    def day(self) -> int:
        """:func:`~detectors.days.day_number` of the event time (UTC days)."""
        day = self._day
        if day is None:
            day = self._day = day_number(self.ts)
        return day

    @property
    def local_hour(self) -> int:
        """Hour of the day (0-23) in the producer's local time."""
        hour = self._hour
        if hour is None:
            hour = self._hour = local_hour(self.ts, self.tz_offset_s)
        return hour

    @property
    def weekend(self) -> bool:
        """Whether the event falls on a Saturday or Sunday in the producer's local time."""
        weekend = self._weekend
        if weekend is None:
            weekend = self._weekend = is_weekend(self.ts, self.tz_offset_s)
        return weekend

    @property
    def sensitive_items(self) -> tuple[tuple[str, str, int], ...]:
        """(kind, name, hash) of the sensitive items the event touches: each data category
        (``category``, hashed in namespace 1) and, when confidential or restricted, the resource
        (``resource``, namespace 2)."""
        items = self._sensitive
        if items is None:
            rid = self.resource_id
            sensitive = bool(rid) and SENSITIVITY_RANK.get(self.sensitivity, 0) >= 2
            categories = self.categories
            items = self._sensitive = _sensitive_items(categories, rid, sensitive) if categories or sensitive else ()
        return items

    @property
    def subject_hashes(self) -> tuple[int, ...]:
        """``h32_once`` of each of ``subject_refs``."""
        hashes = self._subjects
        if hashes is None:
            hashes = self._subjects = tuple([h32_once(ref) for ref in self.subject_refs])
        return hashes

    @property
    def is_access(self) -> bool:
        return self.kind == ACCESS

    @property
    def sensitivity_rank(self) -> int:
        return SENSITIVITY_RANK.get(self.sensitivity, 0)

    @property
    def peer_group(self) -> str:
        """Department, refined by role: the group whose habits are this principal's norm."""
        return f"{self.department or '-'}/{self.role or '-'}"


_NONE: Final[dict[str, Any]] = {}
#: ``date(1970, 1, 1).toordinal()``
_EPOCH_ORDINAL: Final = 719_163
#: Seconds since the epoch below this, times 10**6, plus at most a day of microseconds, stay below
#: 2**53: exact as doubles (until the year 2255)
_EXACT_S: Final = 9_000_000_000
#: fixed-offset tzinfo -> its UTC offset in microseconds (:func:`_offset_us`; a cache, like the memos above)
_OFFSETS: Final[dict[Any, int]] = {}
#: resource id -> (sensitivity, categories), for events that omit them (``stream.contract.decode``'s catalog)
Catalog = dict[str, tuple[str | None, tuple[str, ...]]]


def _offset_us(ts: datetime) -> int:
    """The UTC offset of ``ts`` in microseconds. Fixed-offset zones (pydantic-core's ``TzInfo``, the
    standard library's ``timezone``: those whose ``utcoffset(None)`` is defined) are memoised by zone:
    reading the offset from a datetime is a call into its tzinfo (pydantic-core's is Rust) that builds
    a timedelta, then three attribute reads; a memo hit is one dictionary lookup."""
    tz = ts.tzinfo
    if tz is None:
        return 0
    known = _OFFSETS.get(tz)
    if known is not None:
        return known
    fixed = tz.utcoffset(None)
    offset = ts.utcoffset() if fixed is None else fixed
    us = 0 if offset is None else (offset.days * 86_400 + offset.seconds) * 1_000_000 + offset.microseconds
    if fixed is not None:
        _remember(_OFFSETS, tz, us)
    return us


def from_document(doc: dict[str, Any], catalog: Catalog | None = None) -> Event:
    """Flatten a validated contract document (``stream.contract.models``: a dict, ``ts`` a datetime) into an
    :class:`Event`. Compiled with the detectors: constructing the event is then a native call, not
    a Python call parsing 23-30 arguments."""
    ts: datetime = doc["ts"]  # typed: the arithmetic below then compiles to native integers
    offset_us = _offset_us(ts)
    tz_offset_s = int(offset_us / 1_000_000)
    source: dict[str, Any] = doc.get("source") or _NONE
    resource: dict[str, Any] = doc.get("resource") or _NONE
    sensitivity = resource.get("sensitivity")
    listed = resource.get("categories")
    categories: tuple[str, ...] = tuple(listed) if listed else ()
    if catalog and resource and (sensitivity is None or not categories):
        known_sensitivity, known_categories = catalog.get(resource["id"], (None, ()))
        sensitivity = sensitivity or known_sensitivity
        categories = categories or known_categories
    # ts.timestamp() without its calls into the tzinfo: the exact microseconds since the epoch over
    # 10**6, rounded once, as timestamp() rounds them. While |seconds| < _EXACT_S every term is an
    # integer below 2**53, so exact as a double. (As an integer, the product left the compiled build's
    # short ints, for a bignum multiply per event.)
    seconds = (ts.toordinal() - _EPOCH_ORDINAL) * 86_400 + ts.hour * 3_600 + ts.minute * 60 + ts.second
    if -_EXACT_S < seconds < _EXACT_S:
        epoch_s = (float(seconds) * 1e6 + float(ts.microsecond - offset_us)) / 1e6
    else:
        epoch_s = ts.timestamp()
    if doc["type"] == ACCESS:
        who: dict[str, Any] = doc["principal"]
        refs = doc.get("subject_refs")
        return Event(
            ACCESS, doc["event_id"], epoch_s, who["id"], who.get("kind", "human"), who.get("department"),
            who.get("role"), tz_offset_s, doc["action"], resource.get("id", ""), resource.get("kind"), sensitivity,
            categories, doc.get("records", 0), doc.get("bytes", 0), doc.get("subjects", 0),
            tuple(refs) if refs else (), doc["outcome"], source.get("ip"), source.get("country"),
            source.get("device_id"), source.get("user_agent"), doc.get("purpose"),
        )
    if doc["type"] == AUTHENTICATION:
        return _authentication(doc, epoch_s, tz_offset_s, source)
    target: dict[str, Any] = doc["target"]
    actor: dict[str, Any] = doc["actor"]
    return Event(
        PERMISSION, doc["event_id"], epoch_s, target["id"], target.get("kind", "human"),
        target.get("department"), target.get("role"), tz_offset_s, "", resource.get("id", ""),
        resource.get("kind"), sensitivity, categories, 0, 0, 0, (), doc["outcome"], source.get("ip"),
        source.get("country"), source.get("device_id"), source.get("user_agent"), None, actor["id"],
        actor.get("role"), actor.get("department"), doc["change"], doc["permission"], doc.get("privileged", False),
        doc.get("ticket"), actor.get("admin"),
    )


def _authentication(doc: dict[str, Any], epoch_s: float, tz_offset_s: int, source: dict[str, Any]) -> Event:
    """A sign-in: its application (id, else name) is the event's ``application``; no resource."""
    who: dict[str, Any] = doc["principal"]
    app: dict[str, Any] = doc.get("application") or _NONE
    return Event(
        AUTHENTICATION, doc["event_id"], epoch_s, who["id"], who.get("kind", "human"), who.get("department"),
        who.get("role"), tz_offset_s, "", "", None, None, (), 0, 0, 0, (), doc["outcome"], source.get("ip"),
        source.get("country"), source.get("device_id"), source.get("user_agent"), None, None, None, None, None,
        None, False, None, None, doc.get("method"), doc.get("mfa"), app.get("id") or app.get("name"),
    )
