"""Streaming gzip: compresses what passes through, never holding more than zlib's window."""

from __future__ import annotations

import zlib

from uvm_reporting.exports.formats.common import BinaryWriter

# Level 6 (zlib's default) is most of level 9's ratio at a fraction of its time.
GZIP_LEVEL = 6
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream


class GzipStream:
    """A binary writer that gzips into ``out``; ``finish`` writes the end of the gzip member.

    The header carries no file name and a zero modification time, so the same rows always
    give the same bytes (and the same checksum).
    """

    def __init__(self, out: BinaryWriter, level: int = GZIP_LEVEL) -> None:
        self._out = out
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)

    def write(self, data: bytes | memoryview, /) -> int:
        compressed = self._compressor.compress(data)
        if compressed:
            self._out.write(compressed)
        return len(data)

    def finish(self) -> None:
        self._out.write(self._compressor.flush())
