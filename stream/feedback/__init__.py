"""Analyst feedback: verdicts read from the feedback topic and applied to the detectors' policy."""
