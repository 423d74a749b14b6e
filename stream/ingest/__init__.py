"""``privwatch ingest``: the normalising stage in front of the service. Raw audit records (CloudTrail,
GCP audit, Entra ID, Okta, Kubernetes audit, OCSF) in; contract events out, one principal per person
through the people directory, sensitivity from the data catalog, each event carrying its provenance.
Each format is a pure function in :mod:`stream.ingest.formats`; :mod:`.pipeline` applies one to
records; :mod:`.files` and :mod:`.streaming` are the two modes."""
