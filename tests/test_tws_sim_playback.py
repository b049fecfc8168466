"""Real recorded TWS traffic played through the simulator into the real clients' decoders."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import pytest

from adapters.tws_sim import SimConfig
from adapters.tws_sim.playback import capture_version, is_frame_capture, parse_rust_lines, read_capture
from tests.test_tws_sim_support import CLIENT_LIBS, ErrorLog, record_messages, run, sim_client


def _captures(captures_dir: Path) -> list[Path]:
    return sorted(p for p in captures_dir.rglob("*") if p.is_file() and is_frame_capture(p))


def _reply_req_ids(frames: list[list[str]]) -> set[int]:
    """reqIds of contractDetails / execDetails replies (not live fills, which carry -1)."""
    return {int(f[1]) for f in frames if f[0] in ("10", "11") and int(f[1]) > 0}


@pytest.mark.parametrize("lib_name", CLIENT_LIBS)
def test_every_capture_reaches_the_client_decoder_cleanly(lib_name: str, captures_dir: Path) -> None:
    paths = _captures(captures_dir)
    assert len(paths) >= 20

    async def play(path: Path) -> tuple[list[list[str]], list[str]]:
        handler = ErrorLog()
        logger = logging.getLogger(lib_name)
        logger.addHandler(handler)
        try:
            config = SimConfig(max_server_version=capture_version(path))
            async with sim_client(lib_name, config) as (sim, ib, _lib):
                assert ib.client.serverVersion() == capture_version(path)
                for req_id in _reply_req_ids(read_capture(path)):
                    ib.wrapper.startReq(req_id)  # as if the client had asked: replies need a pending request
                seen = record_messages(ib)
                sent = await sim.play_capture(path)
                await ib.reqCurrentTimeAsync()  # a round trip: the played frames were decoded before it
                assert sent == len(read_capture(path)) > 0
                return seen, handler.messages()
        finally:
            logger.removeHandler(handler)

    for path in paths:
        seen, errors = run(functools.partial(play, path))
        frames = read_capture(path)
        assert seen[: len(frames)] == frames, path.name
        bad = [e for e in errors if "Error handling fields" in e]
        assert not bad, f"{path.name}: {bad}"


def test_rust_artifact_field_is_stripped_only_where_present() -> None:
    with_artifact = "3|41|Cancelled|0|100|0|71270927|0|0|100||0||\n4|2|41|202|Order Canceled - reason:||\n"
    assert [len(f) for f in parse_rust_lines(with_artifact)] == [12, 5]
    without = "59|1|0001f4e5.58bbad52.01.01|2.25|USD|0.0|0.0||\n55|1|9000|\n"
    assert [len(f) for f in parse_rust_lines(without)] == [8, 3]


def test_capture_versions(captures_dir: Path) -> None:
    versions = {p.name: capture_version(p) for p in _captures(captures_dir)}
    assert versions["tsla_mkt_buy_fill_v163.txt"] == 163
    assert versions["es_fut_lmt_fill_v176.txt"] == 176
    assert versions["tws_interactions.yaml"] == 173
    assert versions["open_order_1.txt"] == 176
