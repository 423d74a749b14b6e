"""Detector state per input partition: the engines, and their principal records, shared state and signed
manifests on the compacted state topic."""
