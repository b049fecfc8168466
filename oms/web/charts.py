"""Chart series from the stream of applied events: position over time per instrument with the fills
marked, and P&L (realized + unrealized where a price is known) per currency.

Pure: `record(env, changes)` takes what the fold returned for one event; `data(filter)` shapes what
uPlot draws. Live, the feed hands it every applied event; for a recorded session the whole log is folded
once. Each position's series is thinned (every other point, fills kept) once it grows past `max_points`,
so a long session costs bounded memory. Points are floats: a chart is a picture, never money arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from events.schema import Envelope, ExecutionReported
from oms.listing import instrument_name
from oms.state.model import Position, Removed
from oms.web import views


@dataclass
class _Point:
    t: float  # seconds since the epoch
    qty: float
    pnl: dict[str, float]
    fill: float | None = None  # the fill price, on the point a fill made


@dataclass
class _Series:
    position: Position
    points: list[_Point] = field(default_factory=list)


class Charts:
    def __init__(self, max_points: int = 2000) -> None:
        self.max_points = max_points
        self.seq = 0
        self.version = 0  # bumped when anything drawable changed
        self._series: dict[str, _Series] = {}
        self._prices: dict[str, Decimal] = {}

    def record(self, env: Envelope, changes: Iterable[object]) -> None:
        self.seq = env.seq
        for moved in (c for c in changes if isinstance(c, Removed)):
            self._move(moved)
        positions = {c.key: c for c in changes if isinstance(c, Position)}
        filled = set(positions) if isinstance(env.event, ExecutionReported) else set()
        fill_price: float | None = None
        if isinstance(env.event, ExecutionReported):
            fill_price = env.event.price
            for position in positions.values():
                self._prices[views.instrument_of(position)] = views.dec(env.event.price)
            touched = {views.instrument_of(p) for p in positions.values()}
            for key, series in self._series.items():  # a new price moves every holder's unrealized P&L
                if key not in positions and views.instrument_of(series.position) in touched:
                    positions[key] = series.position
        for key, position in positions.items():
            self._add(key, position, env.ts / 1e9, fill_price if key in filled else None)
        if positions:
            self.version += 1

    def _move(self, removed: Removed) -> None:
        """A position key became another (IB named the conId): its history goes along."""
        old = self._series.pop(removed.key, None)
        if old is None:
            return
        new = self._series.get(removed.moved_to)
        if new is not None:
            new.points = sorted(old.points + new.points, key=lambda p: p.t)
        else:
            self._series[removed.moved_to] = old

    def _add(self, key: str, position: Position, t: float, fill_price: float | None) -> None:
        series = self._series.setdefault(key, _Series(position))
        series.position = position
        total = dict(position.realized_pnl_net)
        views.add_money(total, views.unrealized(position, self._prices) or {})
        quantity = float(views.dec(position.quantity))
        series.points.append(_Point(t, quantity, {c: float(v) for c, v in total.items()}, fill_price))
        if len(series.points) > self.max_points:
            last = len(series.points) - 1
            series.points = [
                p for i, p in enumerate(series.points) if i % 2 == 0 or p.fill is not None or i == last
            ][-self.max_points :]

    def _chosen(self, flt: views.Filter) -> list[_Series]:
        """Strategy positions when filtering by strategy, account positions otherwise; a lifecycle that
        never filled (a rejected order's) is left out, as from the tables."""
        return [
            s
            for s in self._series.values()
            if bool(s.position.strategy_id) == bool(flt.strategy) and flt.lists(s.position)
        ]

    def data(
        self, flt: views.Filter, cursor_ns: int | None = None, limit: int = 8, zone: str = "UTC"
    ) -> dict[str, Any]:
        """`pnl`: {x, series: {CUR: [...]}}; `positions`: per instrument {label, instrument, x, qty, fills}
        (`instrument` picks its colour: the same on every page and whatever else is drawn)."""
        chosen = sorted(self._chosen(flt), key=lambda s: -len(s.points))[:limit]
        positions = [
            {
                "label": " ".join(
                    part
                    for part in (
                        s.position.account,
                        s.position.strategy_id,
                        instrument_name(s.position.contract),
                    )
                    if part
                ),
                "instrument": instrument_name(s.position.contract),
                "x": [p.t for p in s.points],
                "qty": [p.qty for p in s.points],
                "fills": [p.qty if p.fill is not None else None for p in s.points],
            }
            for s in sorted(chosen, key=lambda s: s.position.key)
        ]
        return {
            "pnl": _sum_pnl(self._chosen(flt)),
            "positions": positions,
            "cursor": None if cursor_ns is None else cursor_ns / 1e9,
            "zone": zone,  # the time axis reads in the page's one clock
        }


def _sum_pnl(chosen: list[_Series]) -> dict[str, Any]:
    """Total P&L per currency over time: each position's latest value carried forward, summed per currency."""
    merged = sorted(((p.t, i, p.pnl) for i, s in enumerate(chosen) for p in s.points), key=lambda x: x[:2])
    currencies = sorted({c for _, _, pnl in merged for c in pnl})
    latest: dict[int, dict[str, float]] = {}
    xs: list[float] = []
    series: dict[str, list[float]] = {c: [] for c in currencies}
    for t, index, pnl in merged:
        latest[index] = pnl
        if xs and xs[-1] == t:  # same instant: one point with the final values
            xs.pop()
            for values in series.values():
                values.pop()
        xs.append(t)
        for cur in currencies:
            series[cur].append(round(sum(v.get(cur, 0.0) for v in latest.values()), 6))
    return {"x": xs, "series": series}
