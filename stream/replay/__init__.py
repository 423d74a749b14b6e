"""``privwatch replay``: the engine over a file of events, for backtests and incident reviews."""

from stream.replay.replay import ReplayResult, replay_file, replay_lines

__all__ = ["ReplayResult", "replay_file", "replay_lines"]
