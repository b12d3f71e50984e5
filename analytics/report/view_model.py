"""What a report shows: tables of display strings, per rule and for the whole report.

``analytics.report.view`` fills them (suppressing small cells); the summary, the HTML and the CSV
exports only read them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from analytics.report.data import EstimateRow, ReportData, RuleData
from analytics.report.suppression import Suppressed

HIDDEN = "*"
_NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")
_PERCENT = re.compile(r"^-?\d+(\.\d+)?%$")


def _plain(value: object) -> object:
    """A shown value as a CSV cell: numbers as numbers, percentages as numbers (of 100), hidden as empty."""
    if not isinstance(value, str):
        return value
    if value in (HIDDEN, "–", ""):
        return ""
    if _NUMBER.match(value):
        number = float(value.replace(",", ""))
        return int(number) if number.is_integer() and "." not in value else number
    if _PERCENT.match(value):
        return float(value[:-1])
    return value


@dataclass
class Table:
    """A table as shown: ``name`` is its CSV file's stem. ``data``/``data_columns``: the CSV's numeric rows
    (by default the shown rows with numbers unformatted and hidden cells empty)."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""
    data: list[list] | None = None
    data_columns: list[str] | None = None

    def csv(self) -> tuple[list[str], list[list]]:
        """Header and rows of the CSV export: numeric columns hold numbers, not formatted text."""
        if self.data is not None:
            return self.data_columns or self.columns, self.data
        return [c.replace("%", "percent") for c in self.columns], [[_plain(v) for v in row] for row in self.rows]


@dataclass
class CountTable:
    """A suppressed count table with its totals, and the hidden grid (for derived values and linked tables)."""

    table: Table
    result: Suppressed


@dataclass
class RuleView:
    data: RuleData
    cohort: list[Table] = field(default_factory=list)
    estimates: Table | None = None
    forest: str = ""
    trend: Table | None = None
    trend_plot: str = ""  # empty until MIN_TREND_CYCLES cycles
    strength: list[Table] = field(default_factory=list)
    alerts: list[Table] = field(default_factory=list)
    equity: list[Table] = field(default_factory=list)
    shown_estimates: dict[str, EstimateRow] = field(default_factory=dict)


@dataclass
class ReportView:
    data: ReportData
    min_cell: int
    rules: list[RuleView]
    equity: list[Table]
    quality: list[Table]
    summary: list[str] = field(default_factory=list)
    methods: Table | None = None

    def tables(self) -> list[Table]:
        """Every table of the report, for the CSV exports."""
        found = [t for r in self.rules for t in (*r.cohort, r.estimates, r.trend, *r.strength, *r.alerts, *r.equity)]
        return [t for t in (*found, *self.equity, *self.quality, self.methods) if t is not None]
