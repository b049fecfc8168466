"""DuckDB columns for a fold entity, generated from its msgspec Struct (oms/state/model.py).

Entities are stored as their JSON (fields at their default omitted, as msgspec writes them: one fast
encode per change). DuckDB parses each one once (`json_transform` with the spec below) and every column
takes the Struct's default where the field was omitted. A nested Struct (the contract) is flattened
into its own columns; a field of any other shape stays JSON.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
from msgspec import inspect as mi

_SCALARS: dict[type, str] = {
    mi.StrType: "VARCHAR",
    mi.FloatType: "DOUBLE",
    # quantities, prices and money: exact to 10 places (the fold's averages can carry more; they are
    # rounded there, never turned into binary floats)
    mi.DecimalType: "DECIMAL(38, 10)",
    mi.IntType: "BIGINT",
    mi.BoolType: "BOOLEAN",
}


class Column(msgspec.Struct, frozen=True):
    name: str
    sql_type: str
    expr: str  # over `j`, the json_transform result


def _sql_type(t: mi.Type) -> str | None:
    if type(t) in _SCALARS:
        return _SCALARS[type(t)]
    if isinstance(t, mi.LiteralType) and all(isinstance(v, str) for v in t.values):
        return "VARCHAR"
    if isinstance(t, mi.UnionType):
        present = [u for u in t.types if not isinstance(u, mi.NoneType)]
        return _sql_type(present[0]) if len(present) == 1 else None
    if isinstance(t, mi.VarTupleType | mi.ListType):
        item = _sql_type(t.item_type)
        return f"{item}[]" if item and not item.endswith("]") else None
    if isinstance(t, mi.DictType):
        key, value = _sql_type(t.key_type), _sql_type(t.value_type)
        return f"MAP({key}, {value})" if key == "VARCHAR" and value else None
    return None


def _literal(value: Any, sql_type: str) -> str | None:
    """The default as SQL, or None when there is no default to fill in (required, or None)."""
    if value is msgspec.NODEFAULT or value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return f"{value}::{sql_type}"
    if isinstance(value, int | float):
        return repr(float(value)) if sql_type == "DOUBLE" else str(int(value))
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, tuple | list) and not value:
        return f"[]::{sql_type}"
    if isinstance(value, dict) and not value:
        return f"MAP {{}}::{sql_type}"
    return None


def _default(field: mi.Field) -> Any:
    if field.default_factory is not msgspec.NODEFAULT:
        return field.default_factory()
    return field.default


def columns(struct: type[msgspec.Struct]) -> tuple[str, list[Column]]:
    """(json_transform spec, columns) for an entity Struct."""
    spec: dict[str, Any] = {}
    out: list[Column] = []
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    for field in info.fields:
        ftype = field.type
        if isinstance(ftype, mi.StructType):
            inner_spec, inner = columns(ftype.cls)
            spec[field.encode_name] = msgspec.json.decode(inner_spec)
            prefix = f'j."{field.encode_name}"'
            out += [Column(c.name, c.sql_type, c.expr.replace("j.", prefix + ".", 1)) for c in inner]
            continue
        sql_type = _sql_type(ftype)
        if sql_type is None:
            spec[field.encode_name] = "JSON"
            out.append(Column(field.name, "JSON", f'j."{field.encode_name}"'))
            continue
        spec[field.encode_name] = sql_type
        expr = f'j."{field.encode_name}"'
        literal = _literal(_default(field), sql_type)
        if literal is not None:
            expr = f"coalesce({expr}, {literal})"
        out.append(Column(field.name, sql_type, expr))
    return msgspec.json.encode(spec).decode(), out


def select_list(struct: type[msgspec.Struct]) -> str:
    """`expr AS "name", ...` for a SELECT over `j`."""
    return ", ".join(f'{c.expr} AS "{c.name}"' for c in columns(struct)[1])


def ddl(struct: type[msgspec.Struct]) -> str:
    """`"name" TYPE, ...` for a CREATE TABLE."""
    return ", ".join(f'"{c.name}" {c.sql_type}' for c in columns(struct)[1])


def transform(struct: type[msgspec.Struct], json_column: str = "state") -> str:
    """The `json_transform(...) AS j` that `select_list` reads."""
    return f"json_transform({json_column}, '{columns(struct)[0]}') AS j"
