"""The protocol schema the Rust side generates from its types (docs/protocol.schema.json), and
a check of one value against a part of it."""

import json
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "protocol.schema.json").read_text()
)


def validate(value: Any, schema: Any) -> None:
    """Raises jsonschema.ValidationError when `value` does not fit `schema` (a part of SCHEMA,
    whose `$defs` it may refer to). `true` accepts anything."""
    if isinstance(schema, dict):
        jsonschema.validate(value, {**schema, "$defs": SCHEMA["$defs"]})
