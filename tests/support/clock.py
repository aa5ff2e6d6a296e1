"""A clock that stands still until a test moves it (``clock.now += seconds``)."""

from __future__ import annotations


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
