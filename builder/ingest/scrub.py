"""Scrub: nothing but pixels leaves the builder.

JPEG files are a chain of marker segments. A published tile keeps only the
segments a decoder needs (quantisation and Huffman tables, frame and scan
headers, restart markers, entropy-coded data). Every ``APPn`` segment (JFIF,
EXIF, XMP, ICC profiles, Adobe, GPS inside EXIF) and every ``COM`` comment is
dropped, and so is anything after the end-of-image marker.

The same parser serves the audit (:func:`metadata_segments`), so what the
builder strips and what the audit refuses cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
# Markers a baseline/progressive Huffman JPEG decoder needs, nothing more.
_NEEDED = {
    0xD8: "SOI",
    0xD9: "EOI",
    0xDA: "SOS",
    0xDB: "DQT",
    0xC4: "DHT",
    0xDD: "DRI",
    0xC0: "SOF0",
    0xC1: "SOF1",
    0xC2: "SOF2",
}
_STANDALONE = {SOI, EOI, *range(0xD0, 0xD8), 0x01}


class JpegFormatError(ValueError):
    """The bytes are not a well-formed JPEG marker chain."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One marker segment: ``data[start:end]`` holds the marker and its payload.

    For ``SOS`` the span runs to the end of the entropy-coded data that follows.
    """

    marker: int
    start: int
    end: int

    @property
    def name(self) -> str:
        if self.marker in _NEEDED:
            return _NEEDED[self.marker]
        if 0xE0 <= self.marker <= 0xEF:
            return f"APP{self.marker - 0xE0}"
        if 0xD0 <= self.marker <= 0xD7:
            return f"RST{self.marker - 0xD0}"
        return {0xFE: "COM"}.get(self.marker, f"0xFF{self.marker:02X}")


def _entropy_end(data: bytes, pos: int) -> int:
    """Index of the first marker after entropy-coded data starting at ``pos``."""
    n = len(data)
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= n:
            raise JpegFormatError("entropy-coded data runs past the end (truncated file)")
        nxt = data[pos + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
            pos += 1 if nxt == 0xFF else 2  # stuffed byte, restart marker or fill byte
            continue
        return pos


def segments(data: bytes) -> Iterator[Segment]:
    """Walk every marker segment of a JPEG, through every scan, up to ``EOI``.

    Raises:
        JpegFormatError: not a JPEG, a length that runs past the end, no ``EOI``.
    """
    if not data.startswith(b"\xff\xd8"):
        raise JpegFormatError("does not start with the JPEG SOI marker")
    yield Segment(SOI, 0, 2)
    pos, n = 2, len(data)
    while pos < n:
        if data[pos] != 0xFF:
            raise JpegFormatError(f"expected a marker at byte {pos}")
        while pos + 1 < n and data[pos + 1] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos + 1 >= n:
            break
        marker = data[pos + 1]
        if marker in _STANDALONE:
            yield Segment(marker, pos, pos + 2)
            if marker == EOI:
                return
            pos += 2
            continue
        if pos + 4 > n:
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > n:
            raise JpegFormatError(f"segment 0xFF{marker:02X} at byte {pos} runs past the end")
        if marker == SOS:
            end = _entropy_end(data, end)
        yield Segment(marker, pos, end)
        pos = end
    raise JpegFormatError("no EOI marker (truncated file)")


def strip_jpeg(data: bytes) -> bytes:
    """Return the JPEG with only the segments a decoder needs, nothing after ``EOI``."""
    return b"".join(
        data[s.start : s.end] for s in segments(data) if s.marker in _NEEDED or 0xD0 <= s.marker <= 0xD7
    )


def metadata_segments(data: bytes) -> list[str]:
    """Names of every segment a decoder does not need, plus trailing bytes after ``EOI``.

    An empty list means the file carries pixels and decoding tables only.
    """
    found: list[str] = []
    last = 0
    try:
        for seg in segments(data):
            if not (seg.marker in _NEEDED or 0xD0 <= seg.marker <= 0xD7):
                found.append(seg.name)
            last = seg.end
    except JpegFormatError as exc:
        return [f"malformed JPEG ({exc})"]
    if last < len(data):
        found.append(f"{len(data) - last} bytes after EOI")
    return found
