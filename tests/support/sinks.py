"""Byte sinks: what an export writes into, in tests."""

from __future__ import annotations


class ByteSink:
    """Keeps every byte written, in ``data``."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes | memoryview, /) -> int:
        self.data += data
        return len(data)


class CountingSink:
    """Keeps nothing: counts bytes only."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes | memoryview, /) -> int:
        self.size += len(data)
        return len(data)
