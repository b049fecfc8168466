"""The simulated paper account: executions, positions, cash and P&L per currency, and the values IB reports.

As IB reports them: avgCost includes the multiplier (an ES fill at 5400 has avgCost 270,000 plus the
commission); futures move no cash when they trade (their P&L, net of both commissions, settles into
cash when realized; until then the opening commission is in avgCost, hence in FuturesPNL), other
instruments pay their notional in their own currency; every money figure is kept per currency, and the
`BASE` rows convert to the base currency (USD) at the `ExchangeRate` the account reports.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import msgspec

from events.schema import Contract

UNSET_DOUBLE_TEXT = "1.7976931348623157E308"
BASE_CURRENCY = "USD"
MARGIN = {"STK": 0.25, "FUT": 0.06, "OPT": 1.0, "CASH": 0.03}


class ExecRecord(msgspec.Struct, frozen=True):
    """One execution as execDetails and commissionReport describe it."""

    exec_id: str
    order_id: int
    client_id: int
    perm_id: int
    contract: Contract
    account: str
    side: str  # BOT / SLD
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    order_ref: str
    time: str  # in TWS's time zone, as execDetails carries it
    epoch: float
    commission: float
    currency: str = "USD"
    realized_pnl: float | None = None


class Position(msgspec.Struct, frozen=True):
    account: str
    contract: Contract
    quantity: float = 0.0
    avg_cost: float = 0.0  # per contract, multiplier and commissions included (IB's avgCost)

    @property
    def factor(self) -> float:
        return float(self.contract.multiplier) if self.contract.multiplier else 1.0


def commission_for(
    contract: Contract, shares: float, price: float, per_share: float, minimum: float
) -> float:
    """IB's fixed-rate schedule, roughly: per share (stocks), per contract (futures, options), bps (fx)."""
    if contract.sec_type == "FUT":
        return round(0.85 * shares, 4)
    if contract.sec_type == "OPT":
        return round(max(1.0, 0.65 * shares), 4)
    if contract.sec_type == "CASH":
        return round(max(2.0, shares * price * 0.00002), 4)
    return round(max(minimum, shares * per_share), 4)


def apply_execution(pos: Position, signed: float, price: float, commission: float) -> tuple[Position, float]:
    """The position after a fill and the P&L it realized (net of this fill's commission when closing)."""
    qty, unit = pos.quantity, price * pos.factor
    new_qty = qty + signed
    realized = 0.0
    if qty == 0 or (qty > 0) == (signed > 0):
        avg = (pos.avg_cost * abs(qty) + unit * abs(signed) + commission) / abs(new_qty)
    else:
        closed = min(abs(qty), abs(signed))
        direction = 1.0 if qty > 0 else -1.0
        realized = (unit - pos.avg_cost) * closed * direction - commission
        flipped = abs(signed) > abs(qty)  # the rest opens a new position at this price
        avg = unit if flipped else (pos.avg_cost if new_qty != 0 else 0.0)
    return msgspec.structs.replace(pos, quantity=new_qty, avg_cost=avg), realized


Marks = Callable[[Position], float]  # the current price of a position's instrument


class Account(msgspec.Struct):
    """Mutable on purpose: the simulator's own bookkeeping, rebuilt on start by replaying executions."""

    name: str
    cash: dict[str, float] = msgspec.field(default_factory=dict)
    realized: dict[str, float] = msgspec.field(default_factory=dict)
    commissions: dict[str, float] = msgspec.field(default_factory=dict)
    positions: dict[int, Position] = msgspec.field(default_factory=dict)

    def record(self, e: ExecRecord) -> float:
        """Apply an execution; returns the realized P&L it produced (in the contract's currency)."""
        signed = e.shares if e.side == "BOT" else -e.shares
        cur = e.contract.currency
        pos = self.positions.get(e.contract.con_id) or Position(self.name, e.contract)
        pos, realized = apply_execution(pos, signed, e.price, e.commission)
        self.positions[e.contract.con_id] = pos
        if e.contract.sec_type == "FUT":
            self.cash[cur] = self.cash.get(cur, 0.0) + realized
        else:
            self.cash[cur] = self.cash.get(cur, 0.0) - signed * e.price * pos.factor - e.commission
        self.commissions[e.currency] = self.commissions.get(e.currency, 0.0) + e.commission
        self.realized[cur] = self.realized.get(cur, 0.0) + realized
        return realized

    def values(self, mark: Marks, rates: dict[str, float]) -> list[tuple[str, str, str]]:
        """(key, value, currency) as updateAccountValue reports them: per currency, BASE, and summary."""
        per: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        gross = margin = 0.0
        for p in self.positions.values():
            cur, kind = p.contract.currency, p.contract.sec_type
            value = mark(p) * p.factor * p.quantity
            unrealized = value - p.avg_cost * p.quantity
            per[cur]["UnrealizedPnL"] += unrealized
            key = {"STK": "StockMarketValue", "OPT": "OptionMarketValue", "FUT": "FuturesPNL"}.get(kind)
            if key:
                per[cur][key] += unrealized if kind == "FUT" else value
            per[cur]["NetLiquidationByCurrency"] += unrealized if kind == "FUT" else value
            gross += abs(value) * rates.get(cur, 1.0)
            margin += abs(value) * rates.get(cur, 1.0) * MARGIN.get(kind, 0.25)
        for cur, amount in self.cash.items():
            per[cur]["CashBalance"] += amount
            per[cur]["NetLiquidationByCurrency"] += amount
        for cur, amount in self.realized.items():
            per[cur]["RealizedPnL"] += amount
        per.setdefault(BASE_CURRENCY, defaultdict(float))
        rows: list[tuple[str, str, str]] = []
        base: dict[str, float] = defaultdict(float)
        for cur in sorted(per):
            rate = rates.get(cur, 1.0)
            figures = per[cur]
            figures["TotalCashBalance"] = figures["CashBalance"]
            rows += [("Currency", cur, cur), ("ExchangeRate", _money(rate, 6), cur)]
            for key in sorted(figures):
                rows.append((key, _money(figures[key]), cur))
                base[key] += figures[key] * rate
        rows += [("Currency", "BASE", "BASE"), ("ExchangeRate", "1.00", "BASE")]
        rows += [(key, _money(base[key]), "BASE") for key in sorted(base)]
        net_liq, cash = base["NetLiquidationByCurrency"], base["CashBalance"]
        available = net_liq - margin
        summary = {
            "NetLiquidation": net_liq, "TotalCashValue": cash, "SettledCash": cash,
            "GrossPositionValue": gross,
            "EquityWithLoanValue": net_liq, "InitMarginReq": margin, "MaintMarginReq": margin * 0.8,
            "FullInitMarginReq": margin, "FullMaintMarginReq": margin * 0.8, "AvailableFunds": available,
            "FullAvailableFunds": available, "ExcessLiquidity": net_liq - margin * 0.8,
            "FullExcessLiquidity": net_liq - margin * 0.8, "BuyingPower": available * 4,
            "RealizedPnL": base["RealizedPnL"], "UnrealizedPnL": base["UnrealizedPnL"],
        }  # fmt: skip
        rows += [(key, _money(value), BASE_CURRENCY) for key, value in summary.items()]
        rows += [
            ("AccountCode", self.name, ""), ("AccountType", "INDIVIDUAL", ""), ("AccountReady", "true", ""),
            ("Cushion", _money(available / net_liq if net_liq else 0.0, 4), ""),
            ("DayTradesRemaining", "-1", ""),
        ]  # fmt: skip
        return rows


def _money(value: float, places: int = 2) -> str:
    return f"{value:.{places}f}"


def margin_change(contract: Contract, quantity: float, price: float, rate: float) -> float:
    """The initial margin an order would add (what-if orders report it)."""
    factor = float(contract.multiplier) if contract.multiplier else 1.0
    return abs(quantity * price * factor) * rate * MARGIN.get(contract.sec_type, 0.25)
