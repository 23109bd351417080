"""Faults a test injects: error answers (any status, description, retry_after) for the next
calls or by rule, slow answers, dropped connections, and the optional flood limit."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fakebotapi.calls import ApiCall
from fakebotapi.errors import ApiError
from fakebotapi.limits import FloodLimit

FaultRule = Callable[[str, dict[str, Any]], tuple[int, str, int | None] | None]


@dataclass
class _Fault:
    method: str | None  # None: any method
    status: int
    description: str
    retry_after: int | None
    times: int

    def take(self, method: str) -> bool:
        """Whether this fault hits a call of ``method`` (using up one of its times)."""
        if self.method not in (None, method):
            return False
        self.times -= 1
        return True


class Faults:
    """The faults injected into one fake, checked before each call is executed."""

    def __init__(self) -> None:
        self.flood: FloodLimit | None = None
        self._errors: list[_Fault] = []
        self._rules: list[FaultRule] = []
        self._delays: dict[str | None, float] = {}
        self._disconnects: list[_Fault] = []

    def fail_next(
        self, method: str | None, status: int, description: str, retry_after: int | None, times: int
    ) -> None:
        self._errors.append(_Fault(method, status, description, retry_after, times))

    def fail_where(self, rule: FaultRule) -> None:
        self._rules.append(rule)

    def delay(self, method: str | None, seconds: float) -> None:
        self._delays[method] = seconds

    def delay_of(self, method: str) -> float:
        return self._delays.get(method, self._delays.get(None, 0.0))

    def disconnect_next(self, method: str | None, times: int) -> None:
        self._disconnects.append(_Fault(method, 0, "connection dropped", None, times))

    def take_disconnect(self, method: str) -> bool:
        """True (once per injected time) when this request of ``method`` is to be dropped."""
        return _take(self._disconnects, method) is not None

    def check(self, method: str, params: dict[str, Any], calls: Iterable[ApiCall]) -> None:
        """Raise the :class:`ApiError` an injected fault gives this call, if any."""
        if (fault := _take(self._errors, method)) is not None:
            raise ApiError(fault.status, fault.description, fault.retry_after)
        for rule in self._rules:
            if (hit := rule(method, params)) is not None:
                raise ApiError(*hit)
        if self.flood is not None:
            self.flood.check(method, params, calls)

    def clear(self) -> None:
        self.flood = None
        self._errors.clear()
        self._rules.clear()
        self._delays.clear()
        self._disconnects.clear()


def _take(faults: list[_Fault], method: str) -> _Fault | None:
    """The first fault hitting ``method``, removed once its times are used up."""
    for fault in faults:
        if fault.take(method):
            if fault.times <= 0:
                faults.remove(fault)
            return fault
    return None
