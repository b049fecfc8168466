"""The risk book: daily P&L per strategy and per account from the folded state and IB's figures, kept
across a restart within a session, started again at the session boundary; counts per scope."""

from __future__ import annotations

import stat
from decimal import Decimal
from pathlib import Path

from events.schema import AccountValueReported, AnyEvent, Envelope, KillSwitchChanged
from oms.service.risk import RiskLimits, StrategyLimits
from oms.service.riskbook import SESSIONS_FILE, RiskBook
from oms.service.sessions import session_start
from oms.state.fold import step
from oms.state.model import State, initial_state
from tests.fold_strategies import commission, execution, requested, sent

NOON = 1_796_000_000 * 10**9  # a weekday, mid-session for 17:00 America/New_York
DAY = 86_400 * 10**9
LIMITS = RiskLimits(
    daily_loss_limit=Decimal(100), strategies={"s1": StrategyLimits(daily_loss_limit=Decimal(10))}
)
RATE = AccountValueReported(account="DU111", key="ExchangeRate", value="1.00", currency="USD")


class Books:
    """A state folded event by event, the book watching it as the pipeline makes it watch."""

    def __init__(self, directory: Path | None = None, now_ns: int = NOON) -> None:
        self.state: State = initial_state()
        self.seq = 0
        self.book = RiskBook(LIMITS, lambda: self.state, directory, now_ns)
        self.book.prime()

    def apply(self, *events: AnyEvent) -> None:
        for event in events:
            self.seq += 1
            self.state, changes = step(self.state, Envelope(self.seq, NOON, event))
            self.book.observe(changes)


def traded(books: Books) -> None:
    """Bought 10 at 100, sold 5 at 99, 1.00 commission each: realized -5 - 2, 5 held at 100."""
    books.apply(RATE, requested(), sent(), execution("e1.01", 10), commission("e1.01", 1.0))
    books.apply(requested("c2", "SELL", 5), sent("c2", 102))
    books.apply(
        execution("e2.01", 5, 99.0, "SLD", coid="c2", order_id=102, perm_id=9002), commission("e2.01", 1.0)
    )


def test_a_strategys_daily_pnl_is_realized_net_plus_unrealized_at_ibs_price() -> None:
    books = Books()
    traded(books)
    book = books.book
    assert book.loss_unknown("strategy:s1").startswith("no price for AAPL")  # fails closed
    book.set_quote(265598, Decimal(98))
    assert book.daily_pnl(books.state, "strategy:s1") == Decimal(-7) + Decimal(-10)  # (98 - 100) x 5
    assert book.loss_unknown("strategy:s1") == ""
    assert book.crossed(books.state, ["strategy:s1"]) == [("strategy:s1", Decimal(-17), Decimal(10))]
    book.set_quote(265598, Decimal(101))  # +5 unrealized: -2
    assert book.crossed(books.state, ["strategy:s1"]) == []
    assert book.working("strategy:s1") == 0 and book.working("account:DU111") == 0


def test_the_accounts_unrealized_pnl_is_ibs_own_figure() -> None:
    books = Books()
    traded(books)
    assert books.book.daily_pnl(books.state, "account:DU111") == "IB has not reported DU111's UnrealizedPnL"
    books.apply(AccountValueReported(account="DU111", key="UnrealizedPnL", value="-95.00", currency="BASE"))
    assert books.book.daily_pnl(books.state, "account:DU111") == Decimal(-102)
    assert [s for s, _, _ in books.book.crossed(books.state, ["account:DU111"])] == ["account:DU111"]


def test_the_sessions_baseline_survives_a_restart_and_starts_again_at_the_boundary(tmp_path: Path) -> None:
    books = Books(tmp_path)
    traded(books)
    books.book.set_quote(265598, Decimal(100))
    assert books.book.daily_pnl(books.state, "strategy:s1") == Decimal(-7)
    path = tmp_path / SESSIONS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = RiskBook(LIMITS, lambda: books.state, tmp_path, NOON + 3600 * 10**9)  # a restart, same session
    again.set_quote(265598, Decimal(100))
    assert again.daily_pnl(books.state, "strategy:s1") == Decimal(-7)  # the morning's loss still counts
    tomorrow = RiskBook(LIMITS, lambda: books.state, tmp_path, NOON + DAY)
    tomorrow.set_quote(265598, Decimal(100))
    assert tomorrow.daily_pnl(books.state, "strategy:s1") == Decimal(0)
    assert session_start(NOON + DAY, LIMITS.session_reset) == session_start(NOON, LIMITS.session_reset) + DAY


def test_a_loss_kill_ends_with_its_session_and_an_operators_release_holds_for_the_session() -> None:
    books = Books()
    traded(books)
    book = books.book
    book.set_quote(265598, Decimal(90))
    assert len(book.crossed(books.state, ["strategy:s1"])) == 1
    books.apply(KillSwitchChanged(engaged=True, strategy_id="s1", code="daily_loss_limit", reason="lost"))
    book.engaged("strategy:s1")
    assert book.crossed(books.state, ["strategy:s1"]) == []  # engaged already
    assert book.expired(books.state) == []
    book.now_ns = NOON + DAY
    assert book.expired(books.state) == ["strategy:s1"]
    book.now_ns = NOON
    books.apply(KillSwitchChanged(engaged=False, strategy_id="s1"))
    book.released("strategy:s1")
    assert book.crossed(books.state, ["strategy:s1"]) == []  # released by an operator: not again today


def test_working_orders_and_orders_per_minute_are_counted_per_scope() -> None:
    books = Books()
    books.apply(RATE, requested(), sent(), requested("c2", strategy="s2"))
    book = books.book
    assert (book.working("strategy:s1"), book.working("strategy:s2"), book.working("account:DU111")) == (
        1,
        1,
        2,
    )
    book.placed("s1", "DU111")
    book.now_ns = NOON + 30 * 10**9
    book.placed("s1", "DU111")
    assert (book.recent("strategy:s1"), book.recent("account:DU111")) == (2, 2)
    book.now_ns = NOON + 61 * 10**9
    assert book.recent("strategy:s1") == 1
    books.apply(execution("e1.01", 10))
    assert book.working("strategy:s1") == 0 and book.working("account:DU111") == 1


def test_ibs_daily_pnl_counts_for_the_account_where_it_is_worse() -> None:
    books = Books()
    traded(books)
    books.apply(AccountValueReported(account="DU111", key="UnrealizedPnL", value="-5.00", currency="BASE"))
    assert books.book.daily_pnl(books.state, "account:DU111") == Decimal(-12)
    books.apply(AccountValueReported(account="DU111", key="DailyPnL", value="-150.5", currency="BASE"))
    assert books.book.daily_pnl(books.state, "account:DU111") == Decimal("-150.5")
    books.apply(AccountValueReported(account="DU111", key="DailyPnL", value="3.0", currency="BASE"))
    assert books.book.daily_pnl(books.state, "account:DU111") == Decimal(-12)


def test_an_account_holding_nothing_has_no_unrealized_pnl_and_ibs_summary_row_counts() -> None:
    books = Books()
    books.apply(RATE)
    assert books.book.daily_pnl(books.state, "account:DU111") == Decimal(0)
    traded(books)  # 5 shares held now: IB's figure is needed
    assert books.book.daily_pnl(books.state, "account:DU111") == "IB has not reported DU111's UnrealizedPnL"
    books.apply(
        AccountValueReported(account="DU111", key="NetLiquidation", value="100000", currency="USD"),
        AccountValueReported(account="DU111", key="UnrealizedPnL", value="-1.50", currency="USD"),
    )
    assert books.book.daily_pnl(books.state, "account:DU111") == Decimal("-8.50")


def test_an_account_ib_has_not_reported_yet_has_an_unknown_pnl_not_an_error() -> None:
    books = Books()
    pnl = books.book.daily_pnl(books.state, "account:DU999")
    assert pnl == "IB has reported no account values for DU999 yet"
