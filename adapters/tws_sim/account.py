"""The simulated paper account: executions, positions, cash, commissions, and the values IB reports."""

from __future__ import annotations

import msgspec

from events.schema import Contract

UNSET_DOUBLE_TEXT = "1.7976931348623157E308"


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
    time: str  # "YYYYMMDD HH:MM:SS UTC"
    epoch: float
    commission: float
    currency: str = "USD"
    realized_pnl: float | None = None


class Position(msgspec.Struct, frozen=True):
    account: str
    contract: Contract
    quantity: float = 0.0
    avg_cost: float = 0.0


def commission_for(shares: float, per_share: float, minimum: float) -> float:
    return round(max(minimum, shares * per_share), 4)


def apply_execution(
    pos: Position, signed_shares: float, price: float, commission: float
) -> tuple[Position, float]:
    """The position after a fill and the P&L it realized (net of this fill's commission when closing)."""
    qty = pos.quantity
    new_qty = qty + signed_shares
    realized = 0.0
    if qty == 0 or (qty > 0) == (signed_shares > 0):
        cost = pos.avg_cost * abs(qty) + price * abs(signed_shares) + commission
        avg = cost / abs(new_qty)
    else:
        closed = min(abs(qty), abs(signed_shares))
        direction = 1.0 if qty > 0 else -1.0
        realized = (price - pos.avg_cost) * closed * direction - commission
        flipped = abs(signed_shares) > abs(qty)  # the rest opens a new position at this price
        avg = price if flipped else (pos.avg_cost if new_qty != 0 else 0.0)
    return msgspec.structs.replace(pos, quantity=new_qty, avg_cost=avg), realized


class Account(msgspec.Struct):
    """Mutable on purpose: it is the simulator's own bookkeeping, persisted as a whole."""

    name: str
    cash: float
    realized_pnl: float = 0.0
    commissions: float = 0.0
    positions: dict[int, Position] = msgspec.field(default_factory=dict)

    def record(self, execution: ExecRecord) -> float:
        """Apply an execution; returns the realized P&L it produced."""
        signed = execution.shares if execution.side == "BOT" else -execution.shares
        pos = self.positions.get(execution.contract.con_id) or Position(self.name, execution.contract)
        pos, realized = apply_execution(pos, signed, execution.price, execution.commission)
        self.positions[execution.contract.con_id] = pos
        self.cash -= signed * execution.price + execution.commission
        self.commissions += execution.commission
        self.realized_pnl += realized
        return realized

    def unrealized(self, prices: dict[str, float]) -> float:
        return sum(
            (prices.get(p.contract.symbol, p.avg_cost) - p.avg_cost) * p.quantity
            for p in self.positions.values()
        )

    def values(self, prices: dict[str, float]) -> list[tuple[str, str, str]]:
        """(key, value, currency) as updateAccountValue reports them."""
        gross = sum(
            abs(prices.get(p.contract.symbol, p.avg_cost) * p.quantity) for p in self.positions.values()
        )
        market = sum(prices.get(p.contract.symbol, p.avg_cost) * p.quantity for p in self.positions.values())
        net_liq = self.cash + market
        rows = [
            ("AccountType", "INDIVIDUAL", ""),
            ("NetLiquidation", net_liq, "USD"),
            ("TotalCashValue", self.cash, "USD"),
            ("CashBalance", self.cash, "USD"),
            ("GrossPositionValue", gross, "USD"),
            ("EquityWithLoanValue", net_liq, "USD"),
            ("AvailableFunds", net_liq - gross * 0.25, "USD"),
            ("BuyingPower", (net_liq - gross * 0.25) * 4, "USD"),
            ("ExcessLiquidity", net_liq - gross * 0.25, "USD"),
            ("RealizedPnL", self.realized_pnl, "USD"),
            ("UnrealizedPnL", self.unrealized(prices), "USD"),
        ]
        return [(k, v if isinstance(v, str) else f"{v:.2f}", c) for k, v, c in rows]
