"""The archive's tables, views and macros (DuckDB SQL); docs/replay.md describes each for users.

`events` holds every logged event with its identifiers as typed columns and the full event as JSON.
What the fold concluded is stored, never recomputed in SQL (the fold's rules live in oms/fold.py only):
`state_changes` holds each entity as the fold left it after each event, `current` the fold's final
entities. Typed views are cut from their JSON with one column list per entity, shared by the history
view (`*_states`) and the current one.
"""

from __future__ import annotations

TABLES = """
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
CREATE TABLE IF NOT EXISTS order_events (   -- the orders each event touched (changed or named)
    seq BIGINT NOT NULL,
    order_key VARCHAR NOT NULL      -- the order's client order id (ext:... for an external order)
);
CREATE TABLE IF NOT EXISTS state_changes (  -- an entity as the fold left it after event `seq`
    seq BIGINT NOT NULL,
    entity VARCHAR NOT NULL,        -- order, position, strategy_position, account, removed
    entity_key VARCHAR NOT NULL,
    state JSON NOT NULL             -- every field, defaults included
);
CREATE TABLE IF NOT EXISTS current (        -- the fold's state after the last archived event
    entity VARCHAR NOT NULL,        -- order, position, strategy_position, account, fill
    entity_key VARCHAR NOT NULL,
    state JSON NOT NULL
);
CREATE TABLE IF NOT EXISTS archive_state (  -- the same state, encoded, to continue the next import
    seq BIGINT NOT NULL,
    state BLOB NOT NULL
);
"""

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
INSERT_CHANGES = "INSERT INTO state_changes SELECT seq, entity, entity_key, state FROM changes_batch"
INSERT_ORDER_EVENTS = "INSERT INTO order_events SELECT seq, order_key FROM links_batch"
REPLACE_CURRENT = "DELETE FROM current; INSERT INTO current SELECT entity, entity_key, state FROM current_batch"

_CONTRACT = '"contract":{"symbol":"VARCHAR","sec_type":"VARCHAR","con_id":"BIGINT","currency":"VARCHAR"}'
_ORDER = (
    '{"client_order_id":"VARCHAR","strategy_id":"VARCHAR","account":"VARCHAR",' + _CONTRACT + ","
    '"side":"VARCHAR","quantity":"DOUBLE","order_type":"VARCHAR","limit_price":"DOUBLE","stop_price":"DOUBLE",'
    '"tif":"VARCHAR","status":"VARCHAR","filled":"DOUBLE","overfill":"DOUBLE","avg_fill_price":"DOUBLE",'
    '"remaining":"DOUBLE","broker_filled":"DOUBLE","broker_status":"VARCHAR","order_id":"BIGINT",'
    '"client_id":"INTEGER","perm_ids":["BIGINT"],"external":"BOOLEAN","last_error_code":"INTEGER",'
    '"reason":"VARCHAR","commission":"DOUBLE","created_seq":"BIGINT","updated_seq":"BIGINT"}'
)
_POSITION = (
    '{"key":"VARCHAR","account":"VARCHAR",' + _CONTRACT + ',"strategy_id":"VARCHAR","quantity":"DOUBLE",'
    '"avg_price":"DOUBLE","realized_pnl":"DOUBLE","status":"VARCHAR","close_reason":"VARCHAR",'
    '"lifecycle":"INTEGER","opened_seq":"BIGINT","closed_seq":"BIGINT","updated_seq":"BIGINT"}'
)
_FILL = (
    '{"exec_id":"VARCHAR","client_order_id":"VARCHAR","strategy_id":"VARCHAR","account":"VARCHAR",'
    '"position_key":"VARCHAR",' + _CONTRACT + ',"side":"VARCHAR","shares":"DOUBLE","price":"DOUBLE",'
    '"time_ns":"BIGINT","commission":"DOUBLE","commission_currency":"VARCHAR","realized_pnl":"DOUBLE",'
    '"seq":"BIGINT","corrects":"VARCHAR"}'
)
_ACCOUNT = (
    '{"account":"VARCHAR","values":"MAP(VARCHAR, VARCHAR)","commission":"DOUBLE","realized_pnl":"DOUBLE",'
    '"broker_realized_pnl":"DOUBLE","updated_seq":"BIGINT"}'
)


def _typed(spec: str, source: str, entity: str, keep: str = "") -> str:
    """The entity's fields as columns (the instrument's symbol and conId too), then its JSON `state`."""
    instrument = "j.contract.symbol AS symbol, j.contract.con_id AS con_id, " if "contract" in spec else ""
    return (
        f"SELECT {keep}j.*, {instrument}state "
        f"FROM (SELECT *, json_transform(state, '{spec}') AS j FROM {source} WHERE entity = '{entity}')"
    )


_HISTORY = "state_changes c JOIN (SELECT seq, ts FROM events) e USING (seq)"

VIEWS = f"""
CREATE OR REPLACE VIEW orders AS {_typed(_ORDER, "current", "order")};
CREATE OR REPLACE VIEW positions AS {_typed(_POSITION, "current", "position")};
CREATE OR REPLACE VIEW strategy_positions AS {_typed(_POSITION, "current", "strategy_position")};
CREATE OR REPLACE VIEW fills AS {_typed(_FILL, "current", "fill")};
CREATE OR REPLACE VIEW accounts AS {_typed(_ACCOUNT, "current", "account")};

CREATE OR REPLACE VIEW order_states AS {_typed(_ORDER, _HISTORY, "order", "seq, ts, ")};
CREATE OR REPLACE VIEW position_states AS
SELECT seq, ts, entity = 'removed' AS removed, j.*, j.contract.symbol AS symbol, j.contract.con_id AS con_id, state
FROM (SELECT *, json_transform(state, '{_POSITION}') AS j FROM {_HISTORY}
      WHERE entity IN ('position', 'removed') AND entity_key NOT LIKE '%|%|%');
CREATE OR REPLACE VIEW account_states AS {_typed(_ACCOUNT, _HISTORY, "account", "seq, ts, ")};

CREATE OR REPLACE VIEW executions AS
SELECT x.seq, x.ts, x.exec_id, x.order_id, x.perm_id, x.client_id, x.client_order_id, x.account, x.con_id,
       x.symbol, x.event->>'side' AS side, CAST(x.event->>'shares' AS DOUBLE) AS shares,
       CAST(x.event->>'price' AS DOUBLE) AS price, x.event->>'time' AS ib_time,
       c.seq AS commission_seq, TRY_CAST(c.event->>'commission' AS DOUBLE) AS commission,
       c.event->>'currency' AS commission_currency,
       TRY_CAST(c.event->>'realized_pnl' AS DOUBLE) AS realized_pnl, x.event
FROM events x
LEFT JOIN (SELECT * FROM events WHERE kind = 'commission'
           QUALIFY row_number() OVER (PARTITION BY exec_id ORDER BY seq DESC) = 1) c USING (exec_id)
WHERE x.kind = 'execution';

CREATE OR REPLACE VIEW errors AS
SELECT seq, ts, req_id, code, event->>'error_class' AS error_class, event->>'message' AS message,
       event->>'advanced_reject' AS advanced_reject
FROM events WHERE kind = 'error';

CREATE OR REPLACE MACRO orders_at(t) AS TABLE
SELECT * FROM order_states WHERE ts <= t
QUALIFY row_number() OVER (PARTITION BY client_order_id ORDER BY seq DESC) = 1;

CREATE OR REPLACE MACRO positions_at(t) AS TABLE
SELECT * EXCLUDE (removed) FROM position_states WHERE ts <= t
QUALIFY row_number() OVER (PARTITION BY key ORDER BY seq DESC) = 1 AND NOT removed;

-- One order's events, each with the order as the fold left it after it (key: its client order id).
CREATE OR REPLACE MACRO order_timeline(key) AS TABLE
SELECT e.seq, e.ts, e.kind, s.status, s.filled, e.event, s.state
FROM (SELECT seq FROM order_events WHERE order_key = key) l
JOIN events e USING (seq)
ASOF LEFT JOIN (SELECT seq, status, filled, state FROM order_states WHERE client_order_id = key) s
    ON s.seq <= l.seq
ORDER BY e.seq;
"""

FIND_ORDERS = """
SELECT client_order_id FROM orders
WHERE client_order_id = $ident
   OR (TRY_CAST($ident AS BIGINT) IS NOT NULL
       AND (order_id = TRY_CAST($ident AS BIGINT) OR list_contains(perm_ids, TRY_CAST($ident AS BIGINT))))
ORDER BY client_order_id
"""
