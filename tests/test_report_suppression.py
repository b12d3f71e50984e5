"""Small-cell suppression on crafted counts: nothing from 1 to the threshold shows, nothing hidden can be derived."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy.linalg import null_space

from analytics.report.data import Coverage, Quality, ReportData, RuleData
from analytics.report.suppression import suppress
from analytics.report.view import build_view


def solvable(grid, hidden) -> list[tuple[int, int]]:
    """Hidden entries fixed by the shown ones: those on which every solution of the homogeneous
    row/column equations is zero (null-space test, independent of the module's rank test)."""
    rows, columns = len(grid) - 1, len(grid[0]) - 1
    unknown = [(i, j) for i in range(rows + 1) for j in range(columns + 1) if hidden[i][j]]
    equations = []
    for i in range(rows + 1):
        equations.append([(1 if (a == i and b < columns) else -1 if (a, b) == (i, columns) else 0) for a, b in unknown])
    for j in range(columns + 1):
        equations.append([(1 if (b == j and a < rows) else -1 if (a, b) == (rows, j) else 0) for a, b in unknown])
    if not unknown:
        return []
    basis = null_space(np.array(equations, dtype=float))
    return [ij for k, ij in enumerate(unknown) if basis.shape[1] == 0 or np.allclose(basis[k], 0)]


def shown_values(result) -> list[int]:
    return [v for i, row in enumerate(result.grid) for j, v in enumerate(row) if not result.hidden[i][j]]


def test_counts_from_one_to_the_threshold_are_hidden_zero_and_larger_are_not():
    result = suppress([[0, 1, 10, 11, 500]], 10)
    assert result.cell(0, 0) == 0
    assert result.cell(0, 1) is None and result.cell(0, 2) is None
    assert (result.cell(0, 3), result.cell(0, 4), result.cell(0, 5)) == (11, 500, 522)
    assert not any(1 <= v <= 10 for v in shown_values(result))


def test_the_threshold_is_configurable():
    assert suppress([[3, 50], [60, 70]], 2).cell(0, 0) == 3
    assert suppress([[3, 50], [60, 70]], 3).cell(0, 0) is None
    assert suppress([[1, 50]], 0).cell(0, 0) == 1
    with pytest.raises(ValueError):
        suppress([[1]], -1)


def test_a_lone_small_cell_cannot_be_recovered_from_its_row_or_column_total():
    # 5 is small; without more hiding, 55 - 20 - 30 and 45 - 40 would give it back.
    result = suppress([[5, 20, 30], [40, 50, 60]], 10)
    assert result.cell(0, 0) is None
    assert solvable(result.grid, result.hidden) == []
    for line in [*result.hidden[:-1], *zip(*result.hidden, strict=True)]:
        assert sum(line) != 1  # no row or column hides exactly one entry
    assert result.cell(0, 3) is not None or result.cell(1, 3) is not None  # only what is needed: not everything


def test_a_small_row_total_is_hidden_and_protected_too():
    result = suppress([[4, 3], [100, 200]], 10)
    assert result.cell(0, 2) is None  # the row total 7
    assert solvable(result.grid, result.hidden) == []


def test_cells_linked_through_several_lines_are_not_derivable():
    # Two blocks of small cells joined by one small cell: every row and column hides two or more,
    # yet (1, 2) follows from four equations together, unless one more entry is hidden.
    counts = [[100] * 4 for _ in range(4)]
    for i, j in [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 2), (2, 3), (3, 2), (3, 3)]:
        counts[i][j] = 5
    result = suppress(counts, 10)
    assert solvable(result.grid, result.hidden) == []


def test_tables_shared_totals_can_be_hidden_on_request():
    result = suppress([[30, 40]], 10, frozenset({(1, 2)}))
    assert result.cell(1, 2) is None
    assert solvable(result.grid, result.hidden) == []


@pytest.mark.parametrize("seed", range(40))
def test_random_tables_never_show_small_counts_nor_allow_derivation(seed: int):
    rng = np.random.default_rng(seed)
    rows, columns = int(rng.integers(1, 6)), int(rng.integers(1, 5))
    counts = rng.choice([0, 1, 2, 5, 9, 10, 11, 12, 30, 200], size=(rows, columns)).tolist()
    result = suppress(counts, 10)
    assert not any(1 <= v <= 10 for v in shown_values(result))
    assert solvable(result.grid, result.hidden) == []
    # the grid's margins are the sums of its cells
    for i, j in itertools.product(range(rows), range(columns)):
        assert result.grid[i][j] == counts[i][j]
    assert result.grid[-1][-1] == sum(map(sum, counts))


def crafted_report(cohort_users: dict[str, tuple[int, int]], equity: dict[str, dict[str, int]]) -> ReportData:
    """A report's data with only the counts these tests are about."""
    groups = list(cohort_users)
    by_population = {p: {g: (n, 0, 1.0) for g, n in by_group.items()} for p, by_group in equity.items()}
    rule = RuleData("r", "drug-a", ["drug-b"], "an outcome", groups, users=cohort_users,
                    events={g: (0, 0) for g in groups}, person_years={g: (1.0, 1.0) for g in groups},
                    equity=by_population)  # fmt: skip
    quality = Quality(1000, 400, 0, 0, 0, 0, None, None, None)
    return ReportData(datetime.now(UTC), None, None, 0, [rule], {"all": Coverage(600, 0, 400)}, quality, False)


def test_a_count_hidden_in_one_table_is_hidden_where_another_table_shows_it_as_a_total():
    # The reference row's 5 on the comparators makes the cohort table hide 100 and 30 on drug-a as well
    # (complementary); the equity table's column totals are those same numbers, and must not give them back.
    cohort_users = {"reference": (100, 5), "IM": (50, 60), "PM": (30, 40)}
    equity = {"A": {"reference": 60, "IM": 25, "PM": 15}, "B": {"reference": 40, "IM": 25, "PM": 15}}
    view = build_view(crafted_report(cohort_users, equity), 10)
    users = next(t for t in view.rules[0].cohort if t.name == "r-cohort-users")
    by_population = view.rules[0].equity[0]
    hidden_in_cohort = {row[0] for row in users.rows[:-1] if row[1] == "*"}
    assert hidden_in_cohort >= {"reference"}  # the complementary suppression this test is about did happen
    totals = dict(zip(by_population.columns[1:], by_population.rows[-1][1:], strict=False))
    for group in cohort_users:
        assert (totals[group] == "*") == (group in hidden_in_cohort), group
