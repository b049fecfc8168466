"""Questions asked of an archive: any SQL, an order's timeline, and Parquet exports of tables and views.

Results come back as (column names, rows) so the CLI can print them as a table, CSV or JSON.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import msgspec

from oms.client.render import json_text, tidy
from replay.private import make_private, private_umask
from replay.schema_sql import FIND_ORDERS

# What `oms archive --export-parquet DIR` writes: every table and view of docs/replay.md.
EXPORTED: tuple[str, ...] = (
    "events",
    "orders",
    "order_states",
    "positions",
    "position_states",
    "strategy_positions",
    "fills",
    "executions",
    "errors",
    "accounts",
    "account_states",
    "order_events",
)


class Result(msgspec.Struct, frozen=True):
    columns: list[str]
    rows: list[tuple[Any, ...]]


def connect(archive: Path, *, read_only: bool = True) -> Any:
    import duckdb

    if not archive.is_file():
        raise FileNotFoundError(
            f"{archive}: no such archive (make one with `oms archive DATA_DIR {archive}`)"
        )
    return duckdb.connect(str(archive), read_only=read_only)


def run(con: Any, sql: str, params: list[Any] | dict[str, Any] | None = None) -> Result:
    cursor = con.execute(sql, params) if params is not None else con.execute(sql)
    columns = [d[0] for d in cursor.description] if cursor.description else []
    return Result(columns, cursor.fetchall() if columns else [])


def find_orders(con: Any, ident: str) -> list[str]:
    """Client order ids of the orders named `ident` (client order id, orderId or permId)."""
    return [row[0] for row in con.execute(FIND_ORDERS, {"ident": ident}).fetchall()]


def order_timeline(con: Any, client_order_id: str) -> Result:
    """seq, ts, kind, the order's status, filled, avg_fill_price, remaining after it, the event."""
    return run(con, "SELECT * FROM order_timeline($key)", {"key": client_order_id})


def export_parquet(con: Any, sql: str, out: Path) -> None:
    """Write a query's result (or a whole table/view named by `sql`) to one Parquet file, mode 0600."""
    query = f"SELECT * FROM {sql}" if sql.isidentifier() else sql  # noqa: S608 (the user's own SQL)
    target = str(out).replace("'", "''")
    with private_umask():
        con.execute(f"COPY ({query}) TO '{target}' (FORMAT parquet)")
    make_private(out)


def export_all(con: Any, folder: Path) -> list[Path]:
    with private_umask():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    for name in EXPORTED:
        path = folder / f"{name}.parquet"
        export_parquet(con, name, path)
        written.append(path)
    return written


def to_csv(result: Result) -> str:
    """Exact decimal text (never `0E-10`), a money map as one column per currency (`commission.USD`)."""
    columns, rows = tidy(result.columns, result.rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


def to_json_lines(result: Result) -> str:
    """One JSON object per row; JSON columns stay nested, times become ISO strings, decimals exact text
    (money maps as `{currency: amount}`)."""
    lines = [
        json_text({name: _plain(value) for name, value in zip(result.columns, row, strict=True)})
        for row in result.rows
    ]
    return "".join(line + "\n" for line in lines)


def _plain(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return msgspec.json.decode(value)
        except msgspec.DecodeError:
            return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
