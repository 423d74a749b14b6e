"""The people directory: one record per principal with every alias it is known by (emails, ARNs, Entra
objectIds and appIds, Okta ids), kind, department, role, manager, admin flag, groups and dates.

Loaded from CSV, JSON (an array, or ``{"principals": [...]}``) or JSON lines; aliases and groups in
CSV are separated by ``;``. Ingest resolves every alias to the record's ``id``, so one person is one
principal across sources; the service fills a principal's missing kind, department and role from it.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from stream.errors import InputError, first_error

log = logging.getLogger(__name__)


def _split(value: Any) -> Any:
    """CSV cells hold lists as ``a;b;c``; empty cells are None."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(";") if part.strip()]
    return value


def _blank_none(value: Any) -> Any:
    return None if value == "" else value


Names = Annotated[list[Annotated[str, Field(min_length=1, max_length=512)]], BeforeValidator(_split)]
Text = Annotated[Annotated[str, Field(max_length=128)] | None, BeforeValidator(_blank_none)]


class Person(BaseModel):
    """One directory record. Unknown columns are ignored (HR exports carry many)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=256)]
    aliases: Names = []
    kind: Annotated[Literal["human", "service"] | None, BeforeValidator(_blank_none)] = None
    department: Text = None
    role: Text = None
    manager: Text = None
    admin: Annotated[bool | None, BeforeValidator(_blank_none)] = None
    groups: Names = []
    start: Annotated[date | None, BeforeValidator(_blank_none)] = None
    end: Annotated[date | None, BeforeValidator(_blank_none)] = None


class Directory:
    """Principals by id, and an index from every alias (also matched case-insensitively) to the id.

    >>> d = Directory([Person(id="u-1", aliases=["Alice@Example.com", "arn:aws:iam::1:user/alice"])])
    >>> d.resolve(["nobody", "alice@example.com"]), d.resolve(["arn:aws:iam::1:user/alice"])
    ('u-1', 'u-1')
    >>> d.resolve(["bob"]) is None
    True
    """

    def __init__(self, people: Iterable[Person] = ()) -> None:
        self.people: dict[str, Person] = {}
        self.index: dict[str, str] = {}
        self.folded: dict[str, str] = {}
        #: aliases claimed by two records (the first keeps them)
        self.conflicts = 0
        for person in people:
            self.add(person)

    def add(self, person: Person) -> None:
        self.people[person.id] = person
        for alias in (person.id, *person.aliases):
            owner = self.index.setdefault(alias, person.id)
            if owner != person.id:
                self.conflicts += 1
                continue
            self.folded.setdefault(alias.casefold(), person.id)

    def __len__(self) -> int:
        return len(self.people)

    def resolve(self, candidates: Sequence[str | None]) -> str | None:
        """The id of the first candidate the directory knows (exactly, then ignoring case), or None."""
        for alias in candidates:
            if alias and (pid := self.index.get(alias)) is not None:
                return pid
        for alias in candidates:
            if alias and (pid := self.folded.get(alias.casefold())) is not None:
                return pid
        return None

    def get(self, alias: str) -> Person | None:
        pid = self.resolve([alias])
        return None if pid is None else self.people[pid]


def admin_of(person: Person, admin_roles: Sequence[str], admin_groups: Sequence[str]) -> bool | None:
    """The directory's admin flag; else whether its role or a group is configured as admin; None when
    nothing is configured (then nobody can be said to be a non-admin).

    >>> admin_of(Person(id="a", role="admin"), ["admin"], []), admin_of(Person(id="b", role="agent"), ["admin"], [])
    (True, False)
    >>> admin_of(Person(id="c", role="agent"), [], []) is None
    True
    """
    if person.admin is not None:
        return person.admin
    if person.role in admin_roles or any(g in admin_groups for g in person.groups):
        return True
    return False if (admin_roles or admin_groups) else None


def parse_people(raw: bytes, name: str) -> list[Person]:
    """Directory records from a file's bytes; ``name``'s extension says the format (.csv, .json,
    .jsonl/.ndjson). Raises InputError naming the first bad record."""
    rows: list[Any]
    try:
        if name.endswith(".csv"):
            rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
        elif name.endswith((".jsonl", ".ndjson")):
            rows = [orjson.loads(line) for line in raw.splitlines() if line.strip()]
        else:
            doc = orjson.loads(raw)
            rows = doc.get("principals", []) if isinstance(doc, dict) else doc
    except (UnicodeDecodeError, orjson.JSONDecodeError) as exc:
        raise InputError(f"directory {name} cannot be parsed: {exc}") from None
    people = []
    for number, row in enumerate(rows, 1):
        try:
            people.append(Person.model_validate(row))
        except ValidationError as exc:
            field, msg = first_error(exc, "record")
            raise InputError(f"directory {name} record {number}: {field}: {msg}") from None
    return people


def load_directory(path: str) -> Directory:
    """A directory file (see :func:`parse_people`)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InputError(f"cannot read directory {path}: {exc.strerror}") from None
    directory = Directory(parse_people(raw, path))
    if directory.conflicts:
        log.warning("directory aliases claimed twice count=%d (the first record keeps them)", directory.conflicts)
    return directory
