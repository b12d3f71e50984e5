"""Activity scores and score ranges, as CPIC writes them ("1.5", "≥3.0", "0.25 to 1.0", "> 2.25").

A score is a closed interval: an exact score is a point; "≥3.0" (a duplication of unknown copy
number) is [3.0, ∞). A result matches a range when every score it could be lies in the range.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_RANGE = re.compile(rf"^(?P<lo>{_NUMBER})\s*(?:to|-|–|\.\.)\s*(?P<hi>{_NUMBER})$")
_BOUND = re.compile(rf"^(?P<op>>=|≥|>|<=|≤|<)\s*(?P<value>{_NUMBER})$")


@dataclass(frozen=True, slots=True)
class Interval:
    """Scores from ``low`` to ``high``; ``low_open``/``high_open`` exclude the end itself."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def contains(self, other: Interval) -> bool:
        """Whether every score in ``other`` is in this interval."""
        low_ok = other.low > self.low or (other.low == self.low and (not self.low_open or other.low_open))
        high_ok = other.high < self.high or (other.high == self.high and (not self.high_open or other.high_open))
        return low_ok and high_ok

    def overlaps(self, other: Interval) -> bool:
        """Whether some score lies in both intervals."""
        if self.high < other.low or other.high < self.low:
            return False
        if self.high == other.low:
            return not (self.high_open or other.low_open)
        if other.high == self.low:
            return not (other.high_open or self.low_open)
        return True

    def __str__(self) -> str:
        if self.low == self.high:
            return format_score(self.low)
        if math.isinf(self.high):
            return f"{'>' if self.low_open else '≥'} {format_score(self.low)}"
        if self.low == 0 and not self.low_open and self.high_open:
            return f"< {format_score(self.high)}"
        return f"{format_score(self.low)} to {format_score(self.high)}"


def format_score(value: float, at_least: bool = False) -> str:
    """CPIC's spelling: one decimal unless two are needed ("1.0", "0.25"), "≥" for a lower bound."""
    text = f"{value:.2f}"
    if text.endswith("0"):
        text = text[:-1]
    return f"≥{text}" if at_least else text


def parse_score(text: str) -> Interval | None:
    """A reported score: "1.5" is a point, "≥3.0" (or ">=3.0") is [3.0, ∞). None if not a score."""
    text = text.strip()
    at_least = text.startswith(("≥", ">="))
    number = text.removeprefix("≥").removeprefix(">=").strip()
    if not re.fullmatch(_NUMBER, number):
        return None
    value = float(number)
    return Interval(value, math.inf, high_open=True) if at_least else Interval(value, value)


def parse_range(text: str) -> Interval | None:
    """A range in a rule or gene file: "1.0", "0.25 to 1.0", "> 2.25", ">= 3", "< 1". None if none."""
    text = " ".join(str(text).split())
    if re.fullmatch(_NUMBER, text):
        value = float(text)
        return Interval(value, value)
    match = _RANGE.match(text)
    if match:
        low, high = float(match["lo"]), float(match["hi"])
        return Interval(low, high) if low <= high else None
    match = _BOUND.match(text)
    if match:
        value, op = float(match["value"]), match["op"]
        if op in (">", ">=", "≥"):
            return Interval(value, math.inf, low_open=op == ">", high_open=True)
        return Interval(0.0, value, high_open=op == "<")
    return parse_score(text) if text.startswith("≥") else None
