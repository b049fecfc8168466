"""The service end to end, in-process: raw pyzmq client, the real IB client, the TWS simulator as IB."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import msgspec
import pytest

from adapters.tws_sim.config import SimConfig
from events.reader import JournalReader
from events.schema import CancelRequested, KillSwitchChanged, OrderDenied, OrderRequested, SessionStarted
from oms.cli import main
from oms.protocol import ENDPOINTS_FILE, Endpoints
from tests.test_service_support import Wire, journal_fold, last_seq, place, running, state_of
from tests.waiting import wait_until


def test_place_follows_order_and_position_lifecycle_to_closed(tmp_path: Path) -> None:
    with running(tmp_path) as service:
        wire = Wire(service.endpoints.router, service.endpoints.pub)
        result = wire.ok(place(strategy_id="s1", client_order_id="entry-1", id=7))
        assert result["client_order_id"] == "entry-1" and not result["duplicate"]
        assert result["order"]["status"] == "pending"  # every entity field is on the wire
        for status in ("pending", "submitted", "filled"):
            wire.wait_order("entry-1", status)
        pos = wire.wait_pub(
            lambda t, m: (
                t.startswith("pos.DU123456.AAPL:") and m["data"].get("quantity") == "10"
            )  # exact decimals travel as text
        )
        assert pos["data"]["status"] == "filled"
        spos = wire.wait_pub(lambda t, _m: t.startswith("spos.s1.DU123456.AAPL:"))
        assert spos["type"] == "strategy_position"

        wire.ok(place(side="SELL", strategy_id="s1", client_order_id="exit-1"))
        wire.wait_order("exit-1", "filled")
        closed = wire.wait_pub(
            lambda t, m: t.startswith("pos.DU123456.") and m["data"].get("status") == "closed", what="closed"
        )
        assert closed["data"]["quantity"] == "0" and closed["data"]["close_reason"] == "flat"

        # every published event carries its seq; the live state equals the fold of the journal
        seqs = [m["seq"] for t, m in wire.seen if t.startswith("evt.")]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        live = state_of(service)
        assert journal_fold(tmp_path / "journal", live.seq) == live
        reply = wire.request({"op": "orders", "strategy_id": "s1"})
        assert {o["client_order_id"] for o in reply["result"]["orders"]} == {"entry-1", "exit-1"}
        wire.close()


def test_duplicate_client_order_id_sends_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running(tmp_path) as service:
        wire = Wire(service.endpoints.router, service.endpoints.pub)
        first = wire.ok(place(client_order_id="dup-1", quantity=5))
        second = wire.ok(place(client_order_id="dup-1", quantity=5.0))
        assert second["duplicate"] is True and second["seq"] == first["seq"]
        wire.wait_order("dup-1", "filled")
        third = wire.ok(place(client_order_id="dup-1", quantity=5))
        assert third["duplicate"] and third["order"]["status"] == "filled"
        other = wire.request(place(client_order_id="dup-1", quantity=7, side="SELL"))
        assert other["error"]["code"] == "duplicate_client_order_id", other
        assert "side: BUY, not SELL" in other["error"]["message"]
        assert "quantity: 5, not 7" in other["error"]["message"]
        cli = ["order", "sell", "AAPL", "3", "--id", "dup-1", "--router", service.endpoints.router]
        assert main(cli) == 1
        assert "duplicate_client_order_id" in capsys.readouterr().err
        assert service.sim is not None
        assert [o.order_ref for o in service.sim.orders].count("dup-1") == 1
        requested = [e for e in JournalReader(tmp_path / "journal").read() if type(e.event) is OrderRequested]
        assert len(requested) == 1
        wire.close()


def test_risk_denials_are_logged_and_replied(tmp_path: Path) -> None:
    risk = {
        "max_quantity": 100,
        "max_notional": 50_000,
        "max_position": 150,
        "allowed_symbols": ("AAPL", "MSFT"),
    }
    with running(tmp_path, risk=risk) as service:
        wire = Wire(service.endpoints.router, service.endpoints.pub)
        cases = {
            "q": (place(quantity=101), "max_quantity"),
            "n": (place(quantity=100, order_type="LMT", limit_price=600.0), "max_notional"),
            "s": (place(symbol="TSLA"), "symbol_not_allowed"),
        }
        for coid, (message, reason) in cases.items():
            reply = wire.request({**message, "client_order_id": coid})
            assert not reply["ok"] and reply["error"]["code"] == "risk_denied", reply
            assert reply["error"]["reason"] == reason
        wire.ok(place(quantity=100, client_order_id="fill-100"))
        wire.wait_order("fill-100", "filled")
        # 100 held + 60 more > 150; the market order's notional uses the last fill price
        reply = wire.request(place(quantity=60, client_order_id="p"))
        assert reply["error"]["reason"] == "max_position"
        reply = wire.request(place(quantity=60, side="SELL", client_order_id="reduce"))
        assert reply["ok"], reply
        denied = [e.event for e in JournalReader(tmp_path / "journal").read() if type(e.event) is OrderDenied]
        assert {(d.client_order_id, d.code) for d in denied} == {
            ("q", "max_quantity"),
            ("n", "max_notional"),
            ("s", "symbol_not_allowed"),
            ("p", "max_position"),
        }
        assert state_of(service).orders["q"].status == "rejected"
        assert not any(o.order_ref in {"q", "n", "s", "p"} for o in service.sim.orders)  # type: ignore[union-attr]
        wire.close()


def test_kill_switch_cancels_working_orders_and_refuses_new(tmp_path: Path) -> None:
    with running(tmp_path) as service:
        sim = service.sim
        assert sim is not None
        by_hand = sim.place_external_order("AAPL", "BUY", 1, "LMT", lmt_price=1.0)  # a person, in TWS
        wire = Wire(service.endpoints.router, service.endpoints.pub)
        wire.ok(place(order_type="LMT", limit_price=1.0, client_order_id="work-1"))
        wire.wait_order("work-1", "submitted")
        result = wire.ok({"op": "kill_switch", "engaged": True, "reason": "test"})
        assert result["engaged"] and result["cancelled"] == ["work-1"]
        wire.wait_order("work-1", "cancelled")
        hand = [o for o in sim.orders if o.perm_id == by_hand.perm_id]
        assert [o.status for o in hand] == ["Submitted"]  # only this service's orders: not asked for more
        reply = wire.request(place(client_order_id="after"))
        assert reply["error"]["code"] == "risk_denied" and reply["error"]["reason"] == "kill_switch"
        wire.ok({"op": "kill_switch", "engaged": False})
        wire.ok({"op": "cancel_all", "account_wide": True})  # asked for: every order of the account
        wait_until(lambda: [o.status for o in sim.orders if o.perm_id == by_hand.perm_id] == ["Cancelled"])
        assert wire.ok(place(client_order_id="again"))["client_order_id"] == "again"
        kinds = [
            e.event for e in JournalReader(tmp_path / "journal").read() if type(e.event) is KillSwitchChanged
        ]
        assert [k.engaged for k in kinds] == [True, False]
        wire.close()


def test_max_age_auto_cancel(tmp_path: Path) -> None:
    with running(tmp_path, risk={"max_order_age_s": 0.3}) as service:
        wire = Wire(service.endpoints.router, service.endpoints.pub)
        wire.ok(place(order_type="LMT", limit_price=1.0, client_order_id="old-1"))
        wire.wait_order("old-1", "cancelled", timeout=10)
        logged = [e.event for e in JournalReader(tmp_path / "journal").read()]
        reasons = [e.reason for e in logged if isinstance(e, CancelRequested)]
        assert reasons == ["max_age"]
        wire.close()


def test_modify_and_cancel_and_order_done(tmp_path: Path) -> None:
    with running(tmp_path) as service:
        wire = Wire(service.endpoints.router, service.endpoints.pub)
        wire.ok(place(order_type="LMT", limit_price=1.0, client_order_id="m-1"))
        wire.wait_order("m-1", "submitted")
        modified = wire.ok({"op": "modify", "client_order_id": "m-1", "quantity": 20, "limit_price": 2.0})
        assert modified["seq"] > 0
        wire.wait_pub(
            lambda t, m: t.startswith("order.") and m["data"].get("limit_price") == 2.0, what="modify ack"
        )
        wire.ok({"op": "cancel", "client_order_id": "m-1"})
        wire.wait_order("m-1", "cancelled")
        assert wire.request({"op": "cancel", "client_order_id": "m-1"})["error"]["code"] == "order_done"
        assert (
            wire.request({"op": "modify", "client_order_id": "m-1", "quantity": 1})["error"]["code"]
            == "order_done"
        )
        wire.close()


def test_endpoints_file_snapshot_and_events_requests(tmp_path: Path) -> None:
    with running(tmp_path) as service:
        path = tmp_path / ENDPOINTS_FILE
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert msgspec.json.decode(path.read_bytes(), type=Endpoints) == service.endpoints
        wire = Wire(service.endpoints.router)
        before = last_seq(service)  # IB's account values may arrive at any time: the seq only grows
        snap = wire.request({"op": "snapshot", "id": "s"})
        assert snap["ok"] and snap["id"] == "s" and before <= snap["result"]["seq"] <= last_seq(service)
        before = last_seq(service)
        events = wire.ok({"op": "events", "from_seq": 1, "limit": 2})
        assert [e["seq"] for e in events["events"]] == [1, 2] and events["next_seq"] == 3
        assert before <= events["last_seq"] <= last_seq(service)
        first = msgspec.convert(events["events"][0]["event"], SessionStarted)
        assert first.config_digest == service.config.digest()
        wire.close()
    assert not (tmp_path / ENDPOINTS_FILE).exists()


def test_second_service_on_same_data_dir_refuses(tmp_path: Path) -> None:
    from events.journal_errors import JournalLocked

    with running(tmp_path) as service:
        endpoints = (tmp_path / ENDPOINTS_FILE).read_bytes()
        try:
            with running(tmp_path, sim=SimConfig()):
                raise AssertionError("a second service started on a locked data directory")
        except JournalLocked as exc:
            assert str(tmp_path / "journal") in str(exc)
        assert (tmp_path / ENDPOINTS_FILE).read_bytes() == endpoints  # the running one's file is untouched
        wire = Wire(service.endpoints.router)
        assert wire.ok({"op": "ping"})["ready"] is True
        wire.close()
    wait_until(lambda: not (tmp_path / ENDPOINTS_FILE).exists())


def test_commands_not_ready_while_ib_is_lost_then_resume(tmp_path: Path) -> None:
    import asyncio

    with running(tmp_path) as service:
        wire = Wire(service.endpoints.router, service.endpoints.pub)
        sim = service.sim
        assert sim is not None
        asyncio.run_coroutine_threadsafe(sim.drop_connections(), service.loop).result(10)
        wire.wait_pub(lambda t, m: t == "evt.connection" and m["data"]["state"] == "lost", what="lost")
        refused = wire.request(place(client_order_id="while-lost"))
        if refused["ok"]:  # the adapter reconnected and reconciled before our request arrived
            assert state_of(service).connection in ("connected", "restored")
        else:
            assert refused["error"]["code"] == "not_ready", refused  # lost, or reconnected but reconciling
            assert "while-lost" not in state_of(service).orders
        wait_until(lambda: wire.request({"op": "ping"})["result"]["ready"], timeout=15, what="reconnected")
        wire.ok(place(client_order_id="after-reconnect"))
        wire.wait_order("after-reconnect", "filled")
        wire.close()


def test_cancel_sent_right_behind_its_place_still_cancels_at_ib(tmp_path: Path) -> None:
    with running(tmp_path) as service:
        wire = Wire(service.endpoints.router, service.endpoints.pub)
        wire.send_frames(
            [msgspec.msgpack.encode(place(order_type="LMT", limit_price=1.0, client_order_id="race"))]
        )
        wire.send_frames([msgspec.msgpack.encode({"op": "cancel", "client_order_id": "race"})])
        replies = [wire.recv(), wire.recv()]
        assert all(r is not None and r["ok"] for r in replies), replies
        wire.wait_order("race", "cancelled")
        sim_orders = [o for o in service.sim.orders if o.order_ref == "race"]  # type: ignore[union-attr]
        assert len(sim_orders) == 1
        wire.close()


def test_periodic_snapshots_and_torn_tail_recovery_on_restart(tmp_path: Path) -> None:
    from events.snapshots import list_snapshots

    with running(tmp_path, snapshot_every=5) as service:
        wire = Wire(service.endpoints.router, service.endpoints.pub)
        wire.ok(place(client_order_id="snap-1"))
        wire.wait_order("snap-1", "filled")
        wait_until(lambda: len(list_snapshots(tmp_path / "journal")) >= 1, what="a periodic snapshot")
        wire.close()
    last_segment = sorted((tmp_path / "journal").glob("*.seg"))[-1]
    with last_segment.open("ab") as f:
        f.write(b"\x40\x00\x00\x00torn frame")  # a crash in the middle of a write
    with running(tmp_path) as service:
        assert service.service is not None and service.service.recovery is not None
        live = state_of(service)
        assert live.orders["snap-1"].status == "filled"
        assert journal_fold(tmp_path / "journal", live.seq) == live


def test_a_failed_journal_refuses_commands_but_keeps_answering(tmp_path: Path) -> None:
    with running(tmp_path) as service:
        wire = Wire(service.endpoints.router)
        inner = service.service
        assert inner is not None
        journal = inner.journal

        def closed_when_all_durable() -> bool:
            """As if the disk failed, once nothing is waiting on it (a start-up event's fsync still under
            way would otherwise be the first write to find it failed, not the command below)."""
            if journal.durable_seq < journal.last_seq:
                return False
            journal.close()  # nothing more can be written
            return True

        wait_until(lambda: service.call(closed_when_all_durable), what="the journal idle, then failed")
        first = wire.request(place(client_order_id="after-failure"))
        assert first["error"]["code"] == "internal"
        second = wire.request(place(client_order_id="after-failure-2"))
        assert second["error"]["code"] == "not_ready" and "journal failed" in second["error"]["message"]
        assert wire.ok({"op": "ping"})["ready"] is False
        assert "after-failure" not in state_of(service).orders
        wire.close()


def test_an_event_the_fold_cannot_apply_is_published_skipped_and_the_service_goes_on(tmp_path: Path) -> None:
    from decimal import Decimal

    from events.schema import Contract, ExecutionReported

    bad = ExecutionReported(
        exec_id="nan.01", order_id=0, perm_id=77, client_id=0, order_ref="", account="DU123456",
        contract=Contract(symbol="AAPL", con_id=265598), side="BOT", shares=Decimal("NaN"), price=1.0,
    )  # fmt: skip
    with running(tmp_path) as service:
        wire = Wire(service.endpoints.router, service.endpoints.pub)
        wire.request({"op": "ping"})  # subscribed before the event
        inner = service.service
        assert inner is not None
        seq = service.call(lambda: inner.pipeline.append(bad).seq)
        published = wire.wait_pub(lambda t, m: t == "fold.error", what="the fold error")
        assert published["data"]["seq"] == seq and published["data"]["kind"] == "execution"
        assert "ext:perm:77" not in state_of(service).orders  # changed nothing
        wire.ok(place(order_type="LMT", limit_price=1.0, client_order_id="after-bad"))
        wire.wait_order("after-bad", "submitted")  # and the service goes on
        assert journal_fold(tmp_path / "journal", state_of(service).seq).fold_errors.keys() == {seq}
        wire.close()
