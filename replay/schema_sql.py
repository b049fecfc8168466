"""The archive's tables, views and macros (DuckDB SQL); docs/replay.md describes each for users.

`events` holds every logged event, its identifiers as typed columns and the full event as JSON. What
the fold concluded is stored, never recomputed in SQL (the fold's rules live in oms/state/fold.py only):
`*_states` tables hold each entity as the fold left it after each event that changed it; `orders`,
`positions`, `strategy_positions`, `accounts` are their latest rows (DuckDB picks them), `fills` the
fold's fills after the last archived event and those that retired with their orders before it.
Entity columns are generated from oms/state/model.py (replay.sqlgen), so they follow the fold's Structs.
Every statement here is built from constants of this module and the Structs' field names, never from input.
"""

# ruff: noqa: S608

from __future__ import annotations

import hashlib

from oms.state.model import Account, Fill, Order, Position
from replay.sqlgen import ddl, select_list, transform

_AT = "seq BIGINT NOT NULL, ts TIMESTAMP NOT NULL"  # the event after which an entity was so

TABLES = f"""
CREATE TABLE IF NOT EXISTS events (
    seq BIGINT PRIMARY KEY,
    ts TIMESTAMP NOT NULL,          -- the service's receive time, UTC
    ts_ns BIGINT NOT NULL,          -- the same, exact, in nanoseconds since the epoch
    kind VARCHAR NOT NULL,
    client_order_id VARCHAR,        -- ours: client_order_id, or IB's orderRef
    order_id BIGINT,
    perm_id BIGINT,
    client_id INTEGER,
    exec_id VARCHAR,
    account VARCHAR,
    con_id BIGINT,
    symbol VARCHAR,
    strategy_id VARCHAR,
    code INTEGER,                   -- IB's error code (kind 'error')
    req_id BIGINT,                  -- IB's request id (an order error: that order's orderId)
    v INTEGER NOT NULL,             -- schema version of the writer
    event JSON NOT NULL             -- the event as logged (fields at their default are omitted)
);
CREATE TABLE IF NOT EXISTS order_events (seq BIGINT NOT NULL, order_key VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS order_states ({_AT}, {ddl(Order)});
CREATE TABLE IF NOT EXISTS position_states ({_AT}, {ddl(Position)});
CREATE TABLE IF NOT EXISTS position_moves ({_AT}, key VARCHAR, moved_to VARCHAR);
CREATE TABLE IF NOT EXISTS account_states ({_AT}, {ddl(Account)});
CREATE TABLE IF NOT EXISTS fold_errors ({_AT}, kind VARCHAR NOT NULL, error VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS orders ({ddl(Order)});
CREATE TABLE IF NOT EXISTS positions ({ddl(Position)});
CREATE TABLE IF NOT EXISTS strategy_positions ({ddl(Position)});
CREATE TABLE IF NOT EXISTS fills ({ddl(Fill)});
CREATE TABLE IF NOT EXISTS retired_fills ({ddl(Fill)});
CREATE TABLE IF NOT EXISTS accounts ({ddl(Account)});
CREATE TABLE IF NOT EXISTS archive_state (seq BIGINT NOT NULL, state BLOB NOT NULL);
"""

# Point lookups of one order (its timeline) use these; built once, then kept up to date by DuckDB.
INDEXES = """
CREATE INDEX IF NOT EXISTS order_events_by_order ON order_events (order_key);
CREATE INDEX IF NOT EXISTS order_states_by_order ON order_states (client_order_id);
"""

# An archive is continued only by code with the same tables (entity columns follow oms/state/model.py).
FORMAT = hashlib.sha256(TABLES.encode()).hexdigest()[:16]
META = "CREATE TABLE IF NOT EXISTS archive_format (format VARCHAR NOT NULL)"

# Typed identifier columns are cut out of each batch's JSON by DuckDB, one parse per event.
_EVENT_IDS = (
    '{"client_order_id":"VARCHAR","order_ref":"VARCHAR","order_id":"BIGINT","perm_id":"BIGINT",'
    '"client_id":"INTEGER","exec_id":"VARCHAR","account":"VARCHAR",'
    '"contract":{"con_id":"BIGINT","symbol":"VARCHAR"},"request":{"contract":{"symbol":"VARCHAR"}},'
    '"strategy_id":"VARCHAR","code":"VARCHAR","req_id":"BIGINT"}'
)

INSERT_EVENTS = f"""
INSERT INTO events
SELECT seq, make_timestamp(ts_ns // 1000), ts_ns, kind,
       coalesce(j.client_order_id, nullif(j.order_ref, '')), j.order_id, j.perm_id, j.client_id, j.exec_id,
       j.account, j.contract.con_id, coalesce(j.contract.symbol, j.request.contract.symbol), j.strategy_id,
       CASE WHEN kind = 'error' THEN TRY_CAST(j.code AS INTEGER) END, j.req_id, v, event
FROM (SELECT *, json_transform(event, '{_EVENT_IDS}') AS j FROM batch)
"""


def _history(table: str, struct: type, entities: str) -> str:
    return (
        f"INSERT INTO {table} SELECT seq, make_timestamp(ts_ns // 1000), {select_list(struct)} "
        f"FROM (SELECT seq, ts_ns, state, {transform(struct)} FROM changes_batch "
        f"WHERE entity IN ({entities}));"
    )


INSERT_CHANGES = "\n".join(
    (
        _history("order_states", Order, "'order'"),
        _history("position_states", Position, "'position', 'strategy_position'"),
        _history("account_states", Account, "'account'"),
        "INSERT INTO position_moves SELECT seq, make_timestamp(ts_ns // 1000), state->>'key', "
        "state->>'moved_to' FROM changes_batch WHERE entity = 'removed';",
        "INSERT INTO fold_errors SELECT seq, make_timestamp(ts_ns // 1000), state->>'kind', "
        "state->>'error' FROM changes_batch WHERE entity = 'fold_error';",
    )
)
INSERT_ORDER_EVENTS = "INSERT INTO order_events SELECT seq, order_key FROM links_batch"


# The current tables are the history's last word: each entity's latest row (a position that moved away
# is gone), computed by the same macros users call, so `orders` is `orders_at` the last archived event.
# Fills have no history (the fold reports orders, positions and accounts changing): they come from the
# fold's state as JSON.
REPLACE_CURRENT = """
DELETE FROM orders;
INSERT INTO orders SELECT * EXCLUDE (seq, ts) FROM orders_at('infinity'::TIMESTAMP);
DELETE FROM positions;
INSERT INTO positions SELECT * EXCLUDE (seq, ts) FROM positions_at('infinity'::TIMESTAMP);
DELETE FROM strategy_positions;
INSERT INTO strategy_positions SELECT * EXCLUDE (seq, ts) FROM strategy_positions_at('infinity'::TIMESTAMP);
DELETE FROM accounts;
INSERT INTO accounts SELECT * EXCLUDE (seq, ts) FROM account_states
QUALIFY row_number() OVER (PARTITION BY account ORDER BY seq DESC) = 1;
"""
# fills: the live state's, and those that left it with their orders (history: the state no longer has them)
INSERT_RETIRED_FILLS = (
    f"INSERT INTO retired_fills SELECT {select_list(Fill)} FROM (SELECT {transform(Fill)} FROM retired_batch)"
)
REPLACE_FILLS = (
    f"DELETE FROM fills; INSERT INTO fills SELECT {select_list(Fill)} "
    f"FROM (SELECT {transform(Fill)} FROM fills_batch); INSERT INTO fills SELECT * FROM retired_fills"
)

# A key that moved away after its latest state is gone. A state and a move of the same key at one seq
# mean the key was put there again after the move (a move drops the key's earlier change in that event).
_POSITIONS_AT = """
CREATE OR REPLACE MACRO {name}(t) AS TABLE
SELECT p.* FROM (
    SELECT * FROM position_states WHERE ts <= t AND {which}
    QUALIFY row_number() OVER (PARTITION BY key ORDER BY seq DESC) = 1
) p
WHERE NOT EXISTS (SELECT 1 FROM position_moves m WHERE m.key = p.key AND m.seq > p.seq AND m.ts <= t);
"""

VIEWS = """
CREATE OR REPLACE VIEW executions AS
SELECT x.seq, x.ts, x.exec_id, x.order_id, x.perm_id, x.client_id, x.client_order_id, x.account, x.con_id,
       x.symbol, x.event->>'side' AS side, CAST(x.event->>'shares' AS DECIMAL(38, 10)) AS shares,
       CAST(x.event->>'price' AS DECIMAL(38, 10)) AS price, x.event->>'time' AS ib_time,
       c.seq AS commission_seq, TRY_CAST(c.event->>'commission' AS DECIMAL(38, 10)) AS commission,
       c.event->>'currency' AS commission_currency,
       TRY_CAST(c.event->>'realized_pnl' AS DECIMAL(38, 10)) AS realized_pnl, x.event
FROM events x
LEFT JOIN (SELECT * FROM events WHERE kind = 'commission'
           QUALIFY row_number() OVER (PARTITION BY exec_id ORDER BY seq DESC) = 1) c USING (exec_id)
WHERE x.kind = 'execution';

CREATE OR REPLACE VIEW errors AS
SELECT seq, ts, req_id, code, event->>'error_class' AS error_class, event->>'message' AS message,
       event->>'advanced_reject' AS advanced_reject
FROM events WHERE kind = 'error';

-- What the service believed at time t (t: a TIMESTAMP, UTC).
CREATE OR REPLACE MACRO orders_at(t) AS TABLE
SELECT * FROM order_states WHERE ts <= t
QUALIFY row_number() OVER (PARTITION BY client_order_id ORDER BY seq DESC) = 1;

{positions_at}

-- One order's events, each with the order as the fold left it after it (key: its client order id).
CREATE OR REPLACE MACRO order_timeline(key) AS TABLE
SELECT e.seq, e.ts, e.kind, s.status, s.filled, s.avg_fill_price, s.remaining, e.event
FROM (SELECT seq FROM order_events WHERE order_key = key) l
JOIN events e ON e.seq = l.seq
ASOF LEFT JOIN (SELECT seq AS at_seq, status, filled, avg_fill_price, remaining
                FROM order_states WHERE client_order_id = key) s ON s.at_seq <= l.seq
ORDER BY e.seq;
"""

VIEWS = VIEWS.replace(
    "{positions_at}",
    _POSITIONS_AT.format(name="positions_at", which="strategy_id = ''")
    + _POSITIONS_AT.format(name="strategy_positions_at", which="strategy_id <> ''"),
)

FIND_ORDERS = """
SELECT client_order_id FROM orders
WHERE client_order_id = $ident
   OR (TRY_CAST($ident AS BIGINT) IS NOT NULL
       AND (order_id = TRY_CAST($ident AS BIGINT) OR list_contains(perm_ids, TRY_CAST($ident AS BIGINT))))
ORDER BY client_order_id
"""
