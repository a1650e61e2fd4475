"""The exact McNemar test: is one labeller better than another on the same rows, or is the difference chance?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import comb


@dataclass(frozen=True)
class PairedCounts:
    """Two labellers scored on the same rows: the rows only one of them got right.

    `b`: the first (the reference, e.g. classical) right and the second wrong: labels the second one broke.
    `c`: the first wrong and the second right: labels the second one fixed.
    """

    b: int
    c: int

    def __post_init__(self) -> None:
        if self.b < 0 or self.c < 0:
            raise ValueError(f"discordant counts cannot be negative: b={self.b}, c={self.c}")

    @classmethod
    def of(cls, truth: list[str], first: list[str], second: list[str]) -> PairedCounts:
        """The discordant pairs of two label lists against the truth (all three of one length, in one order)."""
        if not len(truth) == len(first) == len(second):
            raise ValueError(f"paired lists must be of one length: {len(truth)}, {len(first)}, {len(second)}")
        b = sum(f == t != s for t, f, s in zip(truth, first, second, strict=True))
        c = sum(s == t != f for t, f, s in zip(truth, first, second, strict=True))
        return cls(b, c)

    @classmethod
    def of_outcomes(cls, first: Sequence[bool], second: Sequence[bool]) -> PairedCounts:
        """The discordant pairs of two per-row outcomes (right or not: a label, a hit in the top k) on the same rows."""
        if len(first) != len(second):
            raise ValueError(f"paired lists must be of one length: {len(first)}, {len(second)}")
        b = sum(f and not s for f, s in zip(first, second, strict=True))
        c = sum(s and not f for f, s in zip(first, second, strict=True))
        return cls(b, c)

    @property
    def p_value(self) -> float:
        return mcnemar_exact(self.b, self.c)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: the binomial test of min(b, c) successes in b + c trials at p = 1/2.

    Only the discordant pairs count (rows both got right or both got wrong say nothing about which is better).
    No discordant pair: p = 1. Computed with integers, so it does not underflow for thousands of pairs; the same
    figure as `scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue`.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts cannot be negative: b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)
