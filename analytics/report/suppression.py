"""Small-cell suppression for count tables: the CMS cell-size rule, with complementary suppression.

Primary: a count from 1 to ``threshold`` is never shown (zero may be). Complementary: a hidden
count must not be recoverable by subtraction, so every line of the table (each row with its
total, each column with its total, the totals row and column) that hides exactly one entry gets
a second one hidden, its smallest other non-zero entry (an inner cell before the total). The
rule is applied until nothing changes: each new hidden entry can leave another line with one.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MIN_CELL = 10


@dataclass(frozen=True)
class Suppressed:
    """Which entries of a table with margins are hidden: ``hidden[i][j]`` over the (R+1) x (C+1) grid,
    the last row holding the column totals and the last column the row totals."""

    grid: tuple[tuple[int, ...], ...]
    hidden: tuple[tuple[bool, ...], ...]

    def cell(self, i: int, j: int) -> int | None:
        """An entry's value, or None when it is hidden (i == rows or j == columns: a total)."""
        return None if self.hidden[i][j] else self.grid[i][j]


def with_margins(counts: list[list[int]]) -> list[list[int]]:
    """The table with a total per row (last column), per column (last row) and the grand total."""
    rows = [[*row, sum(row)] for row in counts]
    width = len(rows[0]) if rows else 1
    totals = [sum(row[j] for row in rows) for j in range(width)]
    return [*rows, totals]


def _lines(rows: int, columns: int) -> list[list[tuple[int, int]]]:
    """Every additive line of the grid: each row (cells and total) and each column (cells and total)."""
    across = [[(i, j) for j in range(columns + 1)] for i in range(rows + 1)]
    down = [[(i, j) for i in range(rows + 1)] for j in range(columns + 1)]
    return across + down


def suppress(
    counts: list[list[int]], threshold: int = DEFAULT_MIN_CELL, hide: frozenset[tuple[int, int]] = frozenset()
) -> Suppressed:
    """Hide what the cell-size rule requires in ``counts`` (rows x columns) and its margins.

    ``hide``: grid entries to hide as well, e.g. a total that another table already hides (so that
    two tables sharing a total cannot be combined).
    """
    if threshold < 0:
        raise ValueError("the small-cell threshold cannot be negative")
    if any(value < 0 for row in counts for value in row):
        raise ValueError("counts cannot be negative")
    grid = with_margins(counts)
    rows, columns = len(counts), len(grid[0]) - 1
    hidden = [[1 <= value <= threshold or (i, j) in hide for j, value in enumerate(row)] for i, row in enumerate(grid)]
    lines = _lines(rows, columns)
    changed = True
    while changed:
        changed = False
        for line in lines:
            if sum(hidden[i][j] for i, j in line) != 1:
                continue
            candidates = [(i, j) for i, j in line if not hidden[i][j] and grid[i][j] > 0]
            if not candidates:  # the rest are zeros: the hidden entry is zero too, and zero may be shown
                continue
            inner = [(i, j) for i, j in candidates if i < rows and j < columns]
            i, j = min(inner or candidates, key=lambda ij: (grid[ij[0]][ij[1]], ij))
            hidden[i][j] = True
            changed = True
    return Suppressed(tuple(map(tuple, grid)), tuple(map(tuple, hidden)))


def small(value: int, threshold: int = DEFAULT_MIN_CELL) -> bool:
    """Whether a lone count (one shown without totals) must be hidden."""
    return 1 <= value <= threshold
