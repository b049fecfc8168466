"""The loss limit's promise as a property, over the pure core (fold, risk book, intake) driven the way the
service drives it: whatever the prices and orders, once a strategy's daily loss has crossed its limit,
no order of it that adds exposure is accepted (and so none is ever sent)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from events.schema import AccountValueReported, AnyEvent, Envelope, KillSwitchChanged, OrderRequested
from oms.protocol import ContractSpec, PlaceRequest
from oms.service.intake import decide_place
from oms.service.risk import Reference, RiskLimits, StrategyLimits
from oms.service.riskbook import RiskBook
from oms.state.fold import step
from oms.state.model import State, initial_state
from tests.fold_strategies import commission, execution, sent

LIMITS = RiskLimits(strategies={"s1": StrategyLimits(daily_loss_limit=Decimal(50))})
CON_ID = 265598
NOON = 1_796_000_000 * 10**9


class Service:
    """What the pipeline and the handlers do around the pure core, without sockets: fold each event,
    let the book see it, and engage the kill switch right after the event that crossed the limit."""

    def __init__(self) -> None:
        self.state: State = initial_state()
        self.seq = 0
        self.book = RiskBook(LIMITS, lambda: self.state, None, NOON)
        self.apply(AccountValueReported(account="DU111", key="ExchangeRate", value="1", currency="USD"))

    def apply(self, *events: AnyEvent) -> None:
        for event in events:
            self.seq += 1
            self.state, changes = step(self.state, Envelope(self.seq, NOON, event))
            self.book.observe(changes)
            if type(event) is not KillSwitchChanged:
                self.check()

    def check(self) -> None:
        for _ in self.book.crossed(self.state, ["strategy:s1"]):
            self.apply(KillSwitchChanged(engaged=True, strategy_id="s1", code="daily_loss_limit"))

    def held(self) -> Decimal:
        return sum((p.quantity for p in self.state.strategy_positions.values()), Decimal(0))


Side = Literal["BUY", "SELL"]
orders = st.lists(
    st.tuples(st.sampled_from(["BUY", "SELL"]), st.integers(1, 40), st.integers(-300, 300)),
    min_size=1,
    max_size=25,
)


def run(orders: list[tuple[Side, int, int]]) -> tuple[bool, int]:
    """Each step: IB's price moves (checked against the limit, as the service does every second), then
    the strategy places a market order that fills at once. Returns (killed at the end, refusals)."""
    service = Service()
    price, refused = Decimal(100), 0
    for i, (side, quantity, move) in enumerate(orders):
        price = max(Decimal(1), price + Decimal(move) / 100)
        service.book.set_quote(CON_ID, price)
        service.check()
        killed = "strategy:s1" in service.state.kill_scopes
        request = PlaceRequest(
            contract=ContractSpec(symbol="AAPL"), side=side, quantity=Decimal(quantity), strategy_id="s1"
        )
        coid, reference = f"c{i}", Reference(price, "market data")
        decision = decide_place(request, service.state, LIMITS, "DU111", coid, reference, None, service.book)
        if not isinstance(decision, OrderRequested):
            assert killed and getattr(decision, "code", "") == "daily_loss_limit", decision
            refused += 1
            continue
        before = service.held()
        fill = execution(f"e{i}.01", quantity, float(price), "BOT" if side == "BUY" else "SLD", coid=coid,
                         order_id=100 + i, perm_id=9000 + i)  # fmt: skip
        service.apply(decision, sent(coid, 100 + i), fill, commission(f"e{i}.01", 1.0))
        if killed:  # it only brought the position nearer to flat
            after = service.held()
            assert 0 <= after < before if before > 0 else before < after <= 0
    return "strategy:s1" in service.state.kill_scopes, refused


@settings(max_examples=150, deadline=None)
@given(orders=orders)
def test_no_order_that_adds_exposure_is_accepted_after_the_loss_limit_is_crossed(
    orders: list[tuple[Side, int, int]],
) -> None:
    run(orders)


def test_the_property_reaches_a_kill_and_refuses() -> None:
    """A falling price: the kill engages, buying more is refused, selling down passes."""
    falling: list[tuple[Side, int, int]] = [("BUY", 40, 0), ("BUY", 1, -300), ("BUY", 1, -300)]
    killed, refused = run([*falling, ("SELL", 10, 0), ("BUY", 5, 0), ("SELL", 50, 0)])
    assert killed and refused == 4  # both buys after the fall, the buy after the sale, the flipping sale
