"""The directory and catalog a command was told to use (a file or a compacted topic each, or none),
kept current: :meth:`Reference.refresh` is called from the command's loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from pydantic import ValidationError

from stream.enrich.catalog import Catalog, Rule, load_catalog
from stream.enrich.directory import Directory, Person, load_directory
from stream.enrich.sources import FileSource, TopicSource
from stream.errors import ConfigError, InputError


def directory_from_values(values: list[bytes]) -> Directory:
    """A directory from a compacted topic's values (one JSON principal record each)."""
    try:
        return Directory(Person.model_validate(orjson.loads(v)) for v in values)
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise InputError(f"directory topic holds a bad record: {exc}"[:300]) from None


def catalog_from_values(values: list[bytes]) -> Catalog:
    """A catalog from a compacted topic's values (one JSON rule each, ordered by ``order``)."""
    try:
        rules = [Rule.model_validate(orjson.loads(v)) for v in values]
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise ConfigError(f"catalog topic holds a bad rule: {exc}"[:300]) from None
    return Catalog(sorted(rules, key=lambda r: r.order))  # stable: equal orders keep key order


class Reference:
    """``directory()``/``catalog()`` give the current versions (None when not configured)."""

    def __init__(self, settings: Any, consumer: Callable[[], Any] | None = None,
                 on_reload: Callable[[str, str], None] | None = None) -> None:
        report = on_reload or (lambda what, outcome: None)
        interval = float(getattr(settings, "reload_interval_s", 10.0))
        self._sources: list[Any] = []
        self._directory = self._source(settings.directory_file, settings.directory_topic, load_directory,
                                       directory_from_values, interval, consumer,
                                       lambda outcome: report("directory", outcome))
        self._catalog = self._source(settings.catalog_file, settings.catalog_topic, load_catalog,
                                     catalog_from_values, interval, consumer,
                                     lambda outcome: report("catalog", outcome))

    def _source(self, path: str | None, topic: str | None, load: Callable[[str], Any],
                build: Callable[[list[bytes]], Any], interval: float, consumer: Callable[[], Any] | None,
                report: Callable[[str], None]) -> Any:
        if path and topic:
            raise ConfigError(f"give a file or a topic, not both ({path}, {topic})")
        if path:
            source: Any = FileSource(path, load, interval, on_reload=report)
        elif topic:
            if consumer is None:
                raise ConfigError(f"topic {topic} needs Kafka (stream mode)")
            source = TopicSource(consumer(), topic, build, on_reload=report)
            source.catch_up()
        else:
            return None
        self._sources.append(source)
        return source

    def directory(self) -> Directory | None:
        return None if self._directory is None else self._directory.current

    def catalog(self) -> Catalog | None:
        return None if self._catalog is None else self._catalog.current

    def refresh(self) -> None:
        for source in self._sources:
            source.refresh()

    def close(self) -> None:
        for source in self._sources:
            if isinstance(source, TopicSource):
                source.close()
