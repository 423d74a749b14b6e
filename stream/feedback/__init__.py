"""Analyst feedback: signed verdicts read from the feedback topic, checked, and applied to the detectors'
policy (:mod:`detectors.feedback`); the signing and key handling the CLI and the triage app share. The
feedback topic's configuration is :data:`stream.kafka.clients.FEEDBACK_TOPIC_CONFIG`."""
