"""The client against a CURVE service: with an allowed key pair it follows and trades; without keys it is
told why instead of waiting for replies that cannot come."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from oms.cli import main as oms_main
from oms.client import AsyncClient, CurveKeys, ServiceUnavailable
from tests.client_helpers import running_service


def test_an_allowed_client_key_follows_and_trades_and_no_key_is_refused_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys, clients = tmp_path / "keys", tmp_path / "keys" / "clients"
    assert oms_main(["keys", str(keys)]) == 0
    assert oms_main(["keys", str(clients), "--name", "strategy"]) == 0
    (clients / "strategy.key_secret").rename(keys / "strategy.key_secret")  # only public keys stay allowed
    capsys.readouterr()
    grants = tmp_path / "oms.toml"
    grants.write_text('[curve.clients.strategy]\nstrategies = ["sec"]\n')  # what the key may act for
    curve_flags = (
        "--curve-secret", str(keys / "server.key_secret"), "--curve-clients", str(clients),
        "--config", str(grants),
    )  # fmt: skip
    curve = CurveKeys.load(keys / "strategy.key_secret", str(keys / "server.key"))
    with running_service(tmp_path / "data", *curve_flags, curve=curve) as service:
        assert service.endpoints.curve_server_key == curve.server_public.decode()

        async def scenario() -> None:
            with pytest.raises(ServiceUnavailable, match="CURVE"):
                await AsyncClient.connect(service.data_dir)
            async with await AsyncClient.connect(service.data_dir, curve=curve, strategy_id="sec") as client:
                coid = await client.place("AAPL", "BUY", 2)
                assert (await client.wait_for_order(coid, "filled", timeout=10)).filled == 2

        asyncio.run(scenario())
        data = ["--data-dir", str(service.data_dir)]
        assert (
            oms_main(
                [
                    "orders",
                    "--strategy",
                    "sec",
                    "--json",
                    "--curve-key",
                    str(keys / "strategy.key_secret"),
                    *data,
                ]
            )
            == 0
        )
        assert '"status":"filled"' in capsys.readouterr().out
