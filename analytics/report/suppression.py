"""Small-cell suppression for count tables: the CMS cell-size rule, with complementary suppression.

Primary: a count from 1 to ``threshold`` is never shown (zero may be). Complementary: a hidden
count must not be recoverable by subtraction, so every line of the table (each row with its
total, each column with its total, the totals row and column) that hides exactly one entry gets
a second one hidden, its smallest other non-zero entry (an inner cell before the total). The
rule is applied until nothing changes: each new hidden entry can leave another line with one.
Lines alone are not quite enough (a hidden cell joining two blocks of hidden cells can still be
solved from the equations of several lines together), so each hidden entry is then checked
against the whole system of row and column equations, and one more is hidden beside any entry
that system determines, until none is determined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


def with_margins(counts: list[list[int]], columns: int) -> list[list[int]]:
    """The table with a total per row (last column), per column (last row) and the grand total."""
    rows = [[*row, sum(row)] for row in counts]
    totals = [sum(row[j] for row in rows) for j in range(columns + 1)]
    return [*rows, totals]


def _lines(rows: int, columns: int) -> list[list[tuple[int, int]]]:
    """Every additive line of the grid: each row (cells and total) and each column (cells and total)."""
    across = [[(i, j) for j in range(columns + 1)] for i in range(rows + 1)]
    down = [[(i, j) for i in range(rows + 1)] for j in range(columns + 1)]
    return across + down


def suppress(
    counts: list[list[int]], threshold: int = DEFAULT_MIN_CELL, hide: frozenset[tuple[int, int]] = frozenset(),
    *, columns: int | None = None,
) -> Suppressed:  # fmt: skip
    """Hide what the cell-size rule requires in ``counts`` (rows x columns) and its margins.

    ``columns``: the number of columns, needed only when ``counts`` has no rows.
    ``hide``: grid entries to hide as well, e.g. a total that another table already hides (so that
    two tables sharing a total cannot be combined).
    """
    if threshold < 0:
        raise ValueError("the small-cell threshold cannot be negative")
    if any(value < 0 for row in counts for value in row):
        raise ValueError("counts cannot be negative")
    columns = len(counts[0]) if counts else columns or 1
    if any(len(row) != columns for row in counts):
        raise ValueError("every row needs the same number of counts")
    grid = with_margins(counts, columns)
    rows = len(counts)
    hidden = [[1 <= value <= threshold or (i, j) in hide for j, value in enumerate(row)] for i, row in enumerate(grid)]
    lines = _lines(rows, columns)
    while True:
        changed = True
        while changed:
            changed = False
            for line in lines:
                if sum(hidden[i][j] for i, j in line) == 1:
                    changed |= _hide_beside(grid, hidden, line, rows, columns)
        exposed = [ij for ij in determined(grid, hidden) if grid[ij[0]][ij[1]] > 0]
        if not exposed:
            return Suppressed(tuple(map(tuple, grid)), tuple(map(tuple, hidden)))
        i, j = exposed[0]
        through = [line for line in lines if (i, j) in line]
        everything = [(a, b) for a in range(rows + 1) for b in range(columns + 1)]
        if not any(_hide_beside(grid, hidden, line, rows, columns) for line in [*through, everything]):
            return Suppressed(tuple(map(tuple, grid)), tuple(map(tuple, hidden)))  # nothing left to hide


def _hide_beside(grid: list[list[int]], hidden: list[list[bool]], line: list[tuple[int, int]], rows: int,
                 columns: int) -> bool:  # fmt: skip
    """Hide the smallest shown non-zero entry of ``line`` (an inner cell before a total); whether one was."""
    candidates = [(i, j) for i, j in line if not hidden[i][j] and grid[i][j] > 0]
    if not candidates:  # the rest are zeros: then the hidden entry is zero too, and zero may be shown
        return False
    inner = [(i, j) for i, j in candidates if i < rows and j < columns]
    i, j = min(inner or candidates, key=lambda ij: (grid[ij[0]][ij[1]], ij))
    hidden[i][j] = True
    return True


def determined(grid: list[list[int]] | tuple, hidden: list[list[bool]] | tuple) -> list[tuple[int, int]]:
    """Hidden entries whose value the shown entries determine through the row and column equations.

    Entry k is determined when the unit vector e_k lies in the row space of the equations
    restricted to the hidden entries (rank test).
    """
    rows, columns = len(grid) - 1, len(grid[0]) - 1
    unknown = [(i, j) for i in range(rows + 1) for j in range(columns + 1) if hidden[i][j]]
    if not unknown:
        return []
    position = {ij: k for k, ij in enumerate(unknown)}
    equations = []
    for i in range(rows + 1):  # cells of row i minus its total
        equations.append({**{(i, j): 1.0 for j in range(columns)}, (i, columns): -1.0})
    for j in range(columns + 1):
        equations.append({**{(i, j): 1.0 for i in range(rows)}, (rows, j): -1.0})
    matrix = np.zeros((len(equations), len(unknown)))
    for e, equation in enumerate(equations):
        for ij, weight in equation.items():
            if ij in position:
                matrix[e, position[ij]] = weight
    rank = np.linalg.matrix_rank(matrix)
    found = []
    for k, ij in enumerate(unknown):
        unit = np.zeros((1, len(unknown)))
        unit[0, k] = 1.0
        if np.linalg.matrix_rank(np.vstack([matrix, unit])) == rank:
            found.append(ij)
    return found


def small(value: int, threshold: int = DEFAULT_MIN_CELL) -> bool:
    """Whether a lone count (one shown without totals) must be hidden."""
    return 1 <= value <= threshold
