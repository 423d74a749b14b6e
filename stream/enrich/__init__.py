"""What privwatch knows besides the events: the people directory (who is who, across every alias) and
the data catalog (how sensitive a resource is, by glob or prefix). Both load from a file or a compacted
topic and reload without a restart; :class:`~stream.enrich.enricher.Enricher` applies them to events."""
