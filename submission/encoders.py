"""Grid encoders: grid <-> text, as composable named presets.

Decoding is strict (a grid is exactly what the encoder would have written, give or take newlines
around it, and for fenced formats the closing fence and whitespace around the block) and never
raises anything but ``ParseError``.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

import numpy as np

from .tasks import MAX_SIDE

FENCE = "```"


class ParseError(ValueError):
    """A model answer that is not a grid in the expected format."""


def _check_rows(rows: list[str]) -> np.ndarray:
    if len(rows) > MAX_SIDE:
        raise ParseError(f"{len(rows)} rows, more than {MAX_SIDE}")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if not row or not row.isascii() or not row.isdigit():
            raise ParseError(f"row {i + 1} is not a string of digits: {row[:40]!r}")
        if len(row) != width:
            raise ParseError(f"ragged grid: row {i + 1} has {len(row)} cells, row 1 has {width}")
    if width > MAX_SIDE:
        raise ParseError(f"{width} columns, more than {MAX_SIDE}")
    return np.frombuffer("".join(rows).encode(), dtype=np.uint8).reshape(len(rows), width) - ord("0")


# Each cell value's ASCII digit; "?" marks a value that is no single digit (the general path writes it).
_DIGITS = np.full(256, ord("?"), dtype=np.uint8)
_DIGITS[:10] = np.frombuffer(b"0123456789", dtype=np.uint8)
_ROW_PREFIXES = tuple(f"{i} " for i in range(1, MAX_SIDE + 1))


@dataclass(frozen=True)
class Minimal:
    """One line per row, digits with no separator: ``12\\n34``."""

    def encode(self, grid: np.ndarray) -> str:
        return "\n".join(self.encode_rows(grid))

    def encode_rows(self, grid: np.ndarray) -> list[str]:
        grid = np.asarray(grid)
        if grid.ndim == 2 and grid.size:
            if grid.dtype != np.uint8 and 0 <= grid.min() and grid.max() <= 9:
                grid = grid.astype(np.uint8)
            if grid.dtype == np.uint8:
                # ARC cells are single digits: one table lookup writes them all (this runs ~8 times per prompt)
                text = _DIGITS[grid].tobytes().decode("ascii")
                if "?" not in text:
                    cols = grid.shape[1]
                    return [text[i : i + cols] for i in range(0, len(text), cols)]
        return ["".join(map(str, row)) for row in grid.tolist()]

    def decode(self, text: str) -> np.ndarray:
        return self.decode_lines(text.strip("\n").split("\n"))

    def decode_lines(self, lines: list[str]) -> np.ndarray:
        return _check_rows(lines)

    answer_start = ""


@dataclass(frozen=True)
class RowNumbers:
    """Each line of the inner encoding prefixed by its 1-based index and a space."""

    inner: object

    def encode(self, grid: np.ndarray) -> str:
        return "\n".join(self.encode_rows(grid))

    def encode_rows(self, grid: np.ndarray) -> list[str]:
        rows = self.inner.encode_rows(grid) or [""]  # no rows still writes one numbered line, as split("\n") would
        prefixes = _ROW_PREFIXES if len(rows) <= len(_ROW_PREFIXES) else [f"{i} " for i in range(1, len(rows) + 1)]
        return list(map(operator.add, prefixes, rows))  # map stops at the shorter: one prefix per row

    def decode(self, text: str) -> np.ndarray:
        return self.decode_lines(text.strip("\n").split("\n"))

    def decode_lines(self, lines: list[str]) -> np.ndarray:
        # line by line to the inner encoder: an empty first or last row is an empty row, not trimmed away
        stripped = []
        for i, line in enumerate(lines, 1):
            prefix = f"{i} "
            if not line.startswith(prefix):
                raise ParseError(f"line {i} does not start with its row number: {line[:40]!r}")
            stripped.append(line[len(prefix):])
        return self.inner.decode_lines(stripped)

    answer_start = ""


def _fenced_body(text: str, header: str) -> str:
    """The lines between an opening ``header`` line and an optional closing fence."""
    if not text.startswith(header + "\n"):
        raise ParseError(f"does not open with {header!r}: {text[:40]!r}")
    body = text[len(header) + 1 :].rstrip()
    if body.endswith(FENCE):
        body = body[: -len(FENCE)]
    if FENCE in body:
        raise ParseError("text after the closing fence")
    return body


@dataclass(frozen=True)
class CodeBlock:
    """````grid\\n{inner}\\n````."""

    inner: object

    def encode(self, grid: np.ndarray) -> str:
        return f"{FENCE}grid\n{self.inner.encode(grid)}\n{FENCE}"

    def decode(self, text: str) -> np.ndarray:
        return self.inner.decode(_fenced_body(text.lstrip(), f"{FENCE}grid"))

    answer_start = f"{FENCE}grid"


_SHAPE_HEADER = re.compile(r"```grid shape: (\d{1,2})x(\d{1,2})")


@dataclass(frozen=True)
class ShapeCodeBlock:
    """````grid shape: {rows}x{cols}\\n{inner}\\n````; the shape must agree with the body."""

    inner: object

    def encode(self, grid: np.ndarray) -> str:
        rows, cols = grid.shape
        return f"{FENCE}grid shape: {rows}x{cols}\n{self.inner.encode(grid)}\n{FENCE}"

    def decode(self, text: str) -> np.ndarray:
        text = text.lstrip()
        match = _SHAPE_HEADER.match(text)
        if not match:
            raise ParseError(f"does not open with '```grid shape: RxC': {text[:40]!r}")
        grid = self.inner.decode(_fenced_body(text, match.group(0)))
        shape = (int(match.group(1)), int(match.group(2)))
        if grid.shape != shape:
            raise ParseError(f"header says {shape[0]}x{shape[1]}, grid is {grid.shape[0]}x{grid.shape[1]}")
        return grid

    # The model writes " shape: HxW" itself, as arc24's models were trained to.
    answer_start = f"{FENCE}grid"


ENCODERS = {
    "shape-row-numbers": ShapeCodeBlock(RowNumbers(Minimal())),
    "code-block-row-numbers": CodeBlock(RowNumbers(Minimal())),
    "code-block-minimal": CodeBlock(Minimal()),
    "row-numbers": RowNumbers(Minimal()),
    "minimal": Minimal(),
}
DEFAULT_ENCODER = "shape-row-numbers"  # arc24's inference default


def get_encoder(name: str):
    try:
        return ENCODERS[name]
    except KeyError:
        raise ValueError(f"unknown grid encoder {name!r}; choose from {', '.join(ENCODERS)}") from None


def stop_strings(encoder) -> list[str]:
    """Where generation should stop: the closing fence for fenced encoders, else end of turn only."""
    return [FENCE] if encoder.answer_start.startswith(FENCE) else []


def parse_answer(encoder, completion: str) -> np.ndarray:
    """Decode a completion that continues the encoder's ``answer_start``.

    A completion that is not a grid raises ParseError (a recorded miss); any other exception is a
    bug of a decoder and is let out, so that tests and runs see it instead of a quiet miss."""
    return encoder.decode(encoder.answer_start + completion)
