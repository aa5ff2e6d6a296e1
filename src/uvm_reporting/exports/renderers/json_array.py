"""One JSON array from NDJSON lines, streamed."""

from __future__ import annotations

from uvm_reporting.exports.formats.common import BinaryWriter


class JsonArrayFromLines:
    """Turns NDJSON lines into one JSON array: ``[``, one object per line, ``]``, so the whole
    list is never built and the file stays line-oriented for tools that peek into it.
    Safe because a JSON text never holds a raw newline: every LF in the stream ends an object.
    Data may arrive cut anywhere (appended parts come in blocks), so the LF that ends the data
    so far is held back until more follows: it becomes ``,\\n`` before another object, or
    closes the array in finish()."""

    def __init__(self, out: BinaryWriter) -> None:
        self._out = out
        self._started = False
        self._object_ended = False

    def write(self, data: bytes | memoryview, /) -> int:
        data = bytes(data)
        if data:
            prefix = b",\n" if self._object_ended else b"" if self._started else b"[\n"
            self._started = True
            self._object_ended = data.endswith(b"\n")
            body = data[:-1] if self._object_ended else data
            self._out.write(prefix + body.replace(b"\n", b",\n"))
        return len(data)

    def finish(self) -> None:
        self._out.write(b"\n]\n" if self._started else b"[]\n")
