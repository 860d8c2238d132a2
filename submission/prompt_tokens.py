"""Prompt tokenization that gives the tokenizer's exact ids several times faster.

Tokenizing is most of the pipeline's CPU work (Qwen2.5's tokenizer spends ~1.8 us per character,
mostly in its pre-tokenizer regex, and an ARC-AGI-2 evaluation prompt has ~3,700). A prompt is
mostly grid rows, and the rest (chat markup, instructions, headers) repeats from prompt to
prompt. So a prompt is cut into grid blocks and the text between them, at points where
tokenization cannot look across: after a newline and before a non-whitespace character (no
pre-token of a byte-level BPE such as Qwen2's, GPT-2's or Llama 3's spans one). The text
between blocks is looked up in a cache; a new one is cut the same way into lines, each
tokenized once. A grid block is looked up one token per character when a probe has shown the
tokenizer writes grid rows that way (Qwen2 splits every digit).

That the pieces add up to the whole is checked, not assumed: on a probe at start, on the first
encodes and on one in every ``check_every`` after, against the tokenizer's own encoding (a check
costs about as much as fifty fast encodes). On any difference the tokenizer's own encoding is used
for the rest of the run, and it says so.
"""

from __future__ import annotations

import re

import numpy as np

# One or more grid rows (digit runs, single spaces between them: minimal and row-number
# encodings), starting after a newline and followed by non-whitespace, so both ends are cut
# points. Group 1 is the block; the newline before it is matched, not looked behind at, because
# a pattern that opens with a literal is scanned for several times faster.
_GRID_BLOCK = re.compile(r"\n((?:[0-9]+(?: [0-9]+)*\n)+)(?=\S)")
_LINE_START = re.compile(r"(?<=\n)(?=\S)")  # the cut points inside the text between blocks
_GRID_CHARS = "0123456789 \n"
_CACHE_LIMIT = 50_000  # text pieces kept; grid rows are never cached, so this is rarely reached


def _probe_text() -> str:
    """Grid rows with every pair of adjacent digits, with and without row numbers, between fences."""
    rows = ["".join(f"{a}{b}" for b in range(10)) for a in range(10)]
    rows += ["".join(f"{b}{a}" for b in range(10)) for a in range(10)]
    numbered = [f"{i} {row}" for i, row in enumerate(rows, 1)]
    return "```grid shape: 20x20\n" + "\n".join(numbered) + "\n```\n\n```grid\n" + "\n".join(rows) + "\n```"


class PromptTokenizer:
    """Wraps a Hugging Face tokenizer: ``encode`` is exact and fast on prompt text; every other
    attribute (chat template, decode, special tokens) is the wrapped tokenizer's own."""

    def __init__(self, tokenizer, check_every: int = 512, check_first: int = 4, log=print):
        self.tokenizer = tokenizer
        # New pieces go to a Hugging Face fast tokenizer's Rust tokenizer: on a short piece its
        # Python encode is mostly call overhead. The checks compare with the Python encode, so a
        # backend that disagreed would show on the first prompt.
        self._backend = getattr(tokenizer, "backend_tokenizer", None)
        self.check_every = check_every
        self.check_first = check_first
        self.log = log
        self.encodes = self.checked = 0  # fast encodes (prompts, answer-budget grids, candidates), checks
        self.fallback: str | None = None  # why the fast path was given up, if it was
        self._pieces: dict[str, list[int]] = {}
        self._grid_ids: np.ndarray | None = None  # token id of each grid character, by ASCII code
        self._grid_bytes: bytes | None = None  # the same as a bytes.translate table, where every id < 256
        self._enable_per_character_grids()

    def __getattr__(self, name):  # only called for what this class does not define
        if name.startswith("__") or name == "tokenizer":  # e.g. pickle probing a half-built object
            raise AttributeError(name)
        return getattr(self.tokenizer, name)

    def __len__(self) -> int:  # the vocabulary, added tokens included (len() does not go through __getattr__)
        return len(self.tokenizer)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """The tokenizer's ids for ``text``; fast for prompt text without added special tokens
        (what the pipeline asks for), the tokenizer's own otherwise (same default as its encode)."""
        if add_special_tokens or self.fallback:
            return self._full(text, add_special_tokens)
        self.encodes += 1
        ids = self._piecewise(text)
        if self.encodes <= self.check_first or self.encodes % self.check_every == 0:
            self.checked += 1
            full = self._full(text)
            if ids != full:
                at = next((i for i, (a, b) in enumerate(zip(ids, full)) if a != b), min(len(ids), len(full)))
                self._give_up(f"encode {self.encodes} differs from the tokenizer's own encoding at token {at}")
                return full
        return ids

    def describe(self) -> dict:
        return {"fast": self.fallback is None, "grid_rows_per_character": self._grid_ids is not None,
                "encodes": self.encodes, "checked": self.checked, "pieces": len(self._pieces),
                "fallback": self.fallback}

    def _full(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens)

    def _piece_ids(self, text: str) -> list[int]:
        if self._backend is not None:
            return self._backend.encode(text, add_special_tokens=False).ids
        return self._full(text)

    def _piecewise(self, text: str) -> list[int]:
        ids: list[int] = []
        start = 0
        for block in _GRID_BLOCK.finditer(text):
            rows_start, rows_end = block.span(1)
            ids += self._piece(text[start:rows_start])
            ids += self._grid_rows(text[rows_start:rows_end])
            start = rows_end
        ids += self._piece(text[start:])
        return ids

    def _grid_rows(self, rows: str):
        """The ids of grid rows: a list, or bytes whose values are the ids (``list += bytes`` extends by them)."""
        if self._grid_bytes is not None:  # Qwen2's grid tokens are all < 256: one C call for the block
            return rows.encode("ascii").translate(self._grid_bytes)
        if self._grid_ids is not None:
            return self._grid_ids[np.frombuffer(rows.encode("ascii"), dtype=np.uint8)].tolist()
        return self._piece_ids(rows)

    def _piece(self, text: str) -> list[int]:
        ids = self._pieces.get(text)
        if ids is None:
            if len(self._pieces) >= _CACHE_LIMIT:
                self._pieces.clear()
            lines = _LINE_START.split(text)
            if len(lines) == 1:
                ids = self._piece_ids(text)
            else:  # a new combination of known lines (another shape header, example number) costs no tokenizer call
                ids = [i for line in lines for i in self._piece(line)]
            self._pieces[text] = ids
        return ids

    def _enable_per_character_grids(self) -> None:
        """Look grid rows up one token per character if the tokenizer writes them so: each grid
        character is one token, and a probe with every digit pair agrees with the tokenizer."""
        table = np.full(128, -1, dtype=np.int64)
        for char in _GRID_CHARS:
            ids = self._full(char)
            if len(ids) != 1:
                return
            table[ord(char)] = ids[0]
        self._grid_ids = table
        if table.max() < 256:
            translation = bytearray(range(256))
            for char in _GRID_CHARS:
                translation[ord(char)] = table[ord(char)]
            self._grid_bytes = bytes(translation)
        probe = _probe_text()
        if self._piecewise(probe) != self._full(probe):
            self._grid_ids = self._grid_bytes = None
            self._pieces.clear()

    def _give_up(self, reason: str) -> None:
        self.fallback = reason
        self._pieces.clear()
        self.log(f"prompt tokens: {reason}; using the tokenizer's own encoding for every prompt from now on")
