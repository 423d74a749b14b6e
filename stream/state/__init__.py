"""Detector state per input partition: the engines, their signed snapshots on the compacted state
topic, and background encoding in a forked child."""
