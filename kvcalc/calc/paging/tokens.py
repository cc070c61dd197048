"""Token sequences as runs, so that a 100k-token prompt costs a few tuples and equality stays exact.

A run `(source, start, length)` stands for the tokens `(source, start), (source, start + 1), ...`: token
identity is the pair (source, position in source). A shared system prompt is the run `("prefix:A", 0, 3000)`;
the unique rest of a request is `("req:7", 0, 400)`. Two requests share a token exactly when the pairs are
equal, which is what "byte-identical prefix" means to a cache. Literal token ids (tests, worked examples) are
runs of length 1 with source `("id", value)`, so equal ids compare equal wherever they sit.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable, Iterable, Sequence

Run = tuple[Hashable, int, int]


class TokenSeq:
    """An immutable token sequence made of runs (see the module docstring)."""

    __slots__ = ("_starts", "length", "runs")

    def __init__(self, runs: Iterable[Run] = ()) -> None:
        merged: list[Run] = []
        for source, start, length in runs:
            if length <= 0:
                continue
            if merged and merged[-1][0] == source and merged[-1][1] + merged[-1][2] == start:
                prev = merged[-1]
                merged[-1] = (source, prev[1], prev[2] + length)
            else:
                merged.append((source, start, length))
        self.runs: tuple[Run, ...] = tuple(merged)
        starts, total = [], 0
        for run in self.runs:
            starts.append(total)
            total += run[2]
        self._starts = starts
        self.length = total

    @classmethod
    def stream(cls, source: Hashable, length: int, start: int = 0) -> TokenSeq:
        """`length` tokens of `source` from position `start`."""
        return cls([(source, start, length)])

    @classmethod
    def from_ids(cls, ids: Sequence[int]) -> TokenSeq:
        """Literal token ids: each its own run, so equal ids are equal tokens."""
        return cls((("id", token), 0, 1) for token in ids)

    def __len__(self) -> int:
        return self.length

    def __add__(self, other: TokenSeq) -> TokenSeq:
        return TokenSeq(self.runs + other.runs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenSeq) and self.runs == other.runs

    def __hash__(self) -> int:
        return hash(self.runs)

    def __repr__(self) -> str:
        return f"TokenSeq({list(self.runs)!r})"

    def token(self, position: int) -> tuple[Hashable, int]:
        """Identity of the token at `position`: (source, position in source)."""
        i = bisect_right(self._starts, position) - 1
        source, start, _ = self.runs[i]
        return source, start + position - self._starts[i]

    def slice(self, begin: int, end: int) -> TokenSeq:
        """Tokens [begin, end) as a new sequence."""
        return TokenSeq(self.span(begin, end))

    def span(self, begin: int, end: int) -> tuple[Run, ...]:
        """The runs of tokens [begin, end): a canonical, hashable description of their content."""
        end = min(end, self.length)
        if begin >= end:
            return ()
        out: list[Run] = []
        i = bisect_right(self._starts, begin) - 1
        while i < len(self.runs) and self._starts[i] < end:
            source, start, length = self.runs[i]
            lo = max(begin, self._starts[i])
            hi = min(end, self._starts[i] + length)
            out.append((source, start + lo - self._starts[i], hi - lo))
            i += 1
        return tuple(out)

    def common_prefix(self, other: TokenSeq, limit: int | None = None) -> int:
        """Number of leading tokens equal in both (at most `limit`)."""
        top = min(self.length, other.length, self.length if limit is None else limit)
        pos = 0
        while pos < top:
            a_src, a_pos = self.token(pos)
            b_src, b_pos = other.token(pos)
            if a_src != b_src or a_pos != b_pos:
                break
            pos += min(self._left_in_run(pos), other._left_in_run(pos), top - pos)
        return pos

    def _left_in_run(self, position: int) -> int:
        i = bisect_right(self._starts, position) - 1
        return self._starts[i] + self.runs[i][2] - position
