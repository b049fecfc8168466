"""`oms risk`: every risk limit of every strategy and account, with its current use and headroom, and
the scope's kill switch and P&L of the day (docs/operations.md, "Risk limits")."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal

from oms.cli.client import JSON_HELP, add_service_arguments, connect, run_client
from oms.client.render import json_text
from oms.protocol import ScopeRisk
from oms.readable import plain


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    risk = subparsers.add_parser(
        "risk",
        help="every risk limit with its use and headroom, per strategy and per account",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  oms risk\n  oms risk --strategy mom\n  oms risk --json | jq .",
    )
    risk.add_argument("--strategy", help="only this strategy")
    risk.add_argument("--json", action="store_true", help=JSON_HELP)
    add_service_arguments(risk)
    risk.set_defaults(func=lambda args: run_client(args, _risk))


async def _risk(args: argparse.Namespace) -> int:
    client = await connect(args, follow=False)
    try:
        result = await client.risk(args.strategy)
    finally:
        await client.close()
    if args.json:
        sys.stdout.write(json_text(result.scopes) + "\n")
    else:
        sys.stdout.write(render(result.scopes))
    return 0


def render(scopes: list[ScopeRisk]) -> str:
    """One block per scope: its kill switch and P&L, then a row per limit that is on."""
    lines: list[str] = []
    for scope in scopes:
        pnl = "unknown" if scope.daily_pnl is None else f"{scope.daily_pnl:,.2f}"
        kill = f"  KILLED ({scope.kill})" if scope.kill else ""
        lines.append(f"{scope.scope}  daily P&L {pnl}{kill}")
        rows = [limit for limit in scope.limits if limit.value is not None]
        if not rows:
            lines.append("  (no limits on)")
        for limit in rows:
            assert limit.value is not None
            line = f"  {limit.limit:<28} {plain(limit.value):>14}"
            if limit.unknown:
                lines.append(f"{line}  unknown: {limit.unknown}")
            else:
                lines.append(f"{line} {_number(limit.use):>16} {_number(limit.headroom):>16}")
        lines.append("")
    if not lines:
        return "no strategies or accounts yet\n"
    header = f"  {'limit':<28} {'value':>14} {'use':>16} {'headroom':>16}"
    return "\n".join([header, *lines]) + "\n"


CENTS = Decimal("0.01")


def _number(value: Decimal | None) -> str:
    """Exact, shortened to cents where it has more places (a percentage, a P&L from a division)."""
    if value is None:
        return "-"
    return plain(value.quantize(CENTS) if value != value.quantize(CENTS) else value)
