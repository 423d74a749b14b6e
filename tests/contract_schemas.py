"""The shared JSON Schemas, with a registry so cross-file ``$ref``s resolve."""

from __future__ import annotations

import json

from factories import CONTRACT
from jsonschema import Draft202012Validator
from referencing import Registry, Resource


def _load(name: str) -> dict:
    return json.loads((CONTRACT / f"{name}.schema.json").read_text())


SCHEMAS = {name: _load(name) for name in ("access-event", "permission-event", "authentication-event", "alert",
                                           "feedback")}
REGISTRY = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in SCHEMAS.values()
)


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(
        SCHEMAS[name], registry=REGISTRY, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
