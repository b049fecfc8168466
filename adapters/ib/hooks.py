"""Wrapper-level hooks: every callback IB sends becomes ONE event, before the client library sees it.

The libraries' high-level events hide a lot (fills of other clients, executions returned by the start-up
sync, repeated statuses, commissions of fills they did not place), so the adapter hooks the Wrapper's
methods themselves. Each hook builds its event from the untouched arguments (normalize.py), hands it
on, then lets the library do its own bookkeeping as if nothing happened.

The decoder's execDetails handler is wrapped too: the library only passes its own parse of the
execution time, and the event keeps IB's raw text. `tws_timezone` (set by the adapter from the
handshake) is the zone of execution times that name none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from adapters.ib import normalize
from events.schema import Event

log = logging.getLogger(__name__)

Emit = Callable[[Event], None]

# wrapper method -> the pure function that turns its arguments into an event (None: nothing to log)
CALLBACKS: Final[dict[str, Callable[..., Event | None]]] = {
    "orderStatus": normalize.order_status,
    "openOrder": normalize.open_order,
    "completedOrder": normalize.completed_order,
    "commissionReport": normalize.commission_report,
    "position": normalize.position,
    "updateAccountValue": normalize.update_account_value,
    "error": normalize.error,
}
_EXEC_DETAILS_MSG: Final = 11
_EXEC_TIME_FIELD: Final = 15


class CallbackHooks:
    """Installs the hooks on one client (wrapper + decoder) and sends each event to `emit`."""

    def __init__(self, emit: Emit, tws_timezone: str = "UTC") -> None:
        self._emit = emit
        self.tws_timezone = tws_timezone
        self._raw_exec_time = ""

    def install(self, wrapper: Any, decoder: Any) -> None:
        for name, build in CALLBACKS.items():
            setattr(wrapper, name, self._hook(getattr(wrapper, name), build))
        wrapper.execDetails = self._hook(wrapper.execDetails, self._exec_details)
        wrapper.accountUpdateMulti = self._hook(wrapper.accountUpdateMulti, self._account_update_multi)
        wrapper.pnl = self._hook(wrapper.pnl, lambda reqId, daily, *_: self._pnl(wrapper, reqId, daily))
        decoder.handlers[_EXEC_DETAILS_MSG] = self._keep_exec_time(decoder.handlers[_EXEC_DETAILS_MSG])

    def _hook(self, original: Callable[..., Any], build: Callable[..., Event | None]) -> Callable[..., Any]:
        def hooked(*args: Any) -> Any:
            try:
                event = build(*args)
            except Exception:  # a shape we cannot read must not stop the library
                log.exception("could not normalize %s%r", getattr(original, "__name__", "callback"), args)
                return original(*args)
            try:
                if event is not None:
                    self._emit(event)
            finally:
                original(*args)

        hooked.__name__ = getattr(original, "__name__", "hooked")
        return hooked

    def _exec_details(self, reqId: int, contract: Any, execution: Any) -> Event:
        return normalize.exec_details(reqId, contract, execution, self._raw_exec_time, self.tws_timezone)

    @staticmethod
    def _account_update_multi(
        reqId: int, account: str, modelCode: str, tag: str, val: str, currency: str
    ) -> Event:
        return normalize.update_account_value(tag, val, currency, account)

    @staticmethod
    def _pnl(wrapper: Any, reqId: int, dailyPnL: float) -> Event | None:
        """reqPnL's update: the library knows which account its reqId subscribed."""
        pnl = wrapper.reqId2PnL.get(reqId)
        return normalize.daily_pnl(pnl.account, dailyPnL) if pnl is not None else None

    def _keep_exec_time(self, handler: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
        def keep(fields: list[str]) -> None:
            self._raw_exec_time = fields[_EXEC_TIME_FIELD] if len(fields) > _EXEC_TIME_FIELD else ""
            try:
                handler(fields)
            finally:
                self._raw_exec_time = ""

        return keep
