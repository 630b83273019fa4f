"""docs/PROTOCOL.md against the code: its table of field limits is the request
models' own constraints (so neither can change alone)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tidings.app.schemas import FlagsUpdate, NewApiToken, NewProject, PushTokenRequest, SignIn
from tidings.domain.commands import CommandRequest

PROTOCOL = Path(__file__).parents[2] / "docs" / "PROTOCOL.md"

#: The request bodies whose limits the table lists, by the name the table uses.
BODIES: dict[str, type[BaseModel]] = {
    "POST /api/session": SignIn,
    "POST /api/tokens": NewApiToken,
    "POST /api/projects": NewProject,
    "POST /api/push/token": PushTokenRequest,
    "PUT /api/admin/flags": FlagsUpdate,
}

#: JSON-schema bounds, by the unit the table names them in.
_BOUNDS = {
    "string": ("minLength", "maxLength", "characters"),
    "integer": ("minimum", "maximum", "integer"),
    "array": ("minItems", "maxItems", "items"),
    "object": ("minProperties", "maxProperties", "entries"),
}

Limit = tuple[int | None, int | None, str]


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return _resolve(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        return _resolve(options[0], defs)
    return schema


def _limits(field: str, schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Limit]:
    """Every bounded field (``labels[]``: each item of ``labels``) and its bounds."""
    schema = _resolve(schema, defs)
    found: dict[str, Limit] = {}
    bounds = _BOUNDS.get(schema.get("type", ""))
    if bounds is not None:
        low, high, unit = bounds
        if low in schema or high in schema:
            found[field] = (schema.get(low), schema.get(high), unit)
    if "items" in schema:
        found.update(_limits(f"{field}[]", schema["items"], defs))
    return found


def code_limits() -> dict[tuple[str, str], Limit]:
    """(where, field) -> (min, max, unit) from the models: commands by type."""
    table: dict[tuple[str, str], Limit] = {}
    for where, model in BODIES.items():
        schema = model.model_json_schema()
        for field, prop in schema["properties"].items():
            for name, limit in _limits(field, prop, schema.get("$defs", {})).items():
                table[(where, name)] = limit
    schema = CommandRequest.model_json_schema()
    defs = schema["$defs"]
    for field, prop in schema["properties"].items():
        if field != "command":
            for name, limit in _limits(field, prop, defs).items():
                table[("commands", name)] = limit
    for command in defs.values():
        kind = command.get("properties", {}).get("type", {}).get("const")
        if kind is None:
            continue
        for field, prop in command["properties"].items():
            for name, limit in _limits(field, prop, defs).items():
                table[(kind, name)] = limit
    return table


def _number(cell: str) -> int | None:
    cell = cell.strip().replace(",", "")
    if cell in ("", "-", "—"):
        return None
    if cell == "2^53":
        return 2**53
    return int(cell)


def doc_limits() -> dict[tuple[str, str], Limit]:
    """The rows of PROTOCOL.md's limits table, one per (where, field)."""
    text = PROTOCOL.read_text()
    start = text.index("<!-- limits-table -->")
    table: dict[tuple[str, str], Limit] = {}
    for line in text[start:].splitlines()[1:]:
        if not line.startswith("|"):
            if table:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] in ("where", "---"):
            continue
        wheres, field, low, high, unit = cells
        for where in re.findall(r"`([^`]+)`", wheres):
            table[(where, field.strip("`"))] = (_number(low), _number(high), unit)
    return table


def test_the_limits_table_is_the_request_models_constraints() -> None:
    code, doc = code_limits(), doc_limits()
    missing = sorted(set(code) - set(doc))
    extra = sorted(set(doc) - set(code))
    wrong = {k: (doc[k], code[k]) for k in sorted(set(doc) & set(code)) if doc[k] != code[k]}
    assert not missing and not extra and not wrong, (missing, extra, wrong)
    # Examples an outsider looks for, so the extraction itself cannot go blind.
    assert code[("create_story", "description")] == (None, 20_000, "characters")
    assert code[("add_comment", "text")] == (1, 10_000, "characters")
    assert code[("create_story", "labels[]")] == (1, 50, "characters")
