"""The in-memory state topic the state tests share (:class:`stream.testing.MemoryTopic`)."""

from __future__ import annotations

from stream.testing import MemoryTopic as FakeTopic

__all__ = ["FakeTopic"]
