"""From report data to what is shown: tables of display strings with small cells suppressed.

Every number a reader sees (HTML, CSV or the summary) comes from these tables, so suppression is
applied once, here. Counts go through analytics.report.suppression with their totals; rates,
percentages and ratios computed from a hidden count are hidden too; a hazard ratio is shown only
when the events it rests on are not small.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from analytics.cohort import REFERENCE
from analytics.report import plots
from analytics.report.data import ARMS, FEEDBACK, EstimateRow, ReportData, RuleData
from analytics.report.summary import summarise
from analytics.report.suppression import Suppressed, small, suppress

HIDDEN = "*"
TOTAL = "Total"


@dataclass
class Table:
    """A table as shown: ``name`` is its CSV file's stem."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class CountTable:
    """A suppressed count table with its totals, and the hidden grid (for derived values and linked tables)."""

    table: Table
    result: Suppressed

    def value(self, i: int, j: int) -> int | None:
        return self.result.cell(i, j)

    @property
    def grand_total_hidden(self) -> bool:
        return self.result.hidden[-1][-1]


@dataclass
class RuleView:
    data: RuleData
    cohort: list[Table] = field(default_factory=list)
    estimates: Table | None = None
    forest: str = ""
    trend: Table | None = None
    trend_plot: str = ""
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

    def tables(self) -> list[Table]:
        """Every table of the report, for the CSV exports."""
        found = [t for r in self.rules for t in (*r.cohort, r.estimates, r.trend, *r.strength, *r.alerts, *r.equity)]
        return [t for t in (*found, *self.equity, *self.quality) if t is not None]


def count(value: int | None) -> str:
    return HIDDEN if value is None else f"{value:,}"


def percent(part: int | None, whole: int | None) -> str:
    if part is None or whole is None:
        return HIDDEN
    return "–" if whole == 0 else f"{100 * part / whole:.0f}%"


def count_table(
    name: str, title: str, corner: str, rows: list[str], columns: list[str], counts: list[list[int]], min_cell: int,
    *, total: str = TOTAL, hide: frozenset[tuple[int, int]] = frozenset(), note: str = "",
    derived: dict[str, Callable[[Suppressed, int], str]] | None = None,
) -> CountTable:  # fmt: skip
    """A count table with row and column totals, suppressed; ``derived`` adds columns computed per row."""
    result = suppress(counts, min_cell, hide, columns=len(columns))
    derived = derived or {}
    width = len(columns) + (len(columns) > 1)  # one column: its row totals are the cells themselves
    shown = []
    for i, label in enumerate([*rows, TOTAL]):
        values = [count(result.cell(i, j)) for j in range(width)]
        shown.append([label, *values, *(fn(result, i) for fn in derived.values())])
    totals = [total] if len(columns) > 1 else []
    return CountTable(Table(name, title, [corner, *columns, *totals, *derived], shown, note), result)


def _hr(low: float | None, hr: float | None, high: float | None) -> str:
    return "–" if hr is None or low is None or high is None else f"{hr:.2f} ({low:.2f} to {high:.2f})"


def estimate_shown(row: EstimateRow, min_cell: int) -> bool:
    """A local estimate is shown only when neither event count it rests on is small."""
    return row.hr is not None and not small(row.events, min_cell) and not small(row.reference_events, min_cell)


def _cohort(rule: RuleData, min_cell: int) -> tuple[list[Table], CountTable]:
    arms = [rule.drug, "comparators (" + ", ".join(rule.comparators) + ")"]
    users = count_table(f"{rule.rule}-cohort-users", "New users", "Genotype group", rule.groups, arms,
                        [list(rule.users[g]) for g in rule.groups], min_cell)  # fmt: skip

    def rate(arm: int) -> Callable[[Suppressed, int], str]:
        def per_100(result: Suppressed, i: int) -> str:
            events = result.cell(i, arm)
            if i >= len(rule.groups) or events is None:
                return HIDDEN if events is None else ""
            years = rule.person_years[rule.groups[i]][arm]
            return f"{100 * events / years:.1f}" if years else "–"

        return per_100

    events = count_table(
        f"{rule.rule}-cohort-events", "Outcome events", "Genotype group", rule.groups, arms,
        [list(rule.events[g]) for g in rule.groups], min_cell,
        derived={f"per 100 person-years, {name}": rate(j) for j, name in enumerate(ARMS)},
    )  # fmt: skip
    opted = Table(f"{rule.rule}-cohort-opt-outs", "Research opt-outs excluded", ["Persons"],
                  [[HIDDEN if small(rule.opted_out, min_cell) else f"{rule.opted_out:,}"]])  # fmt: skip
    return [users.table, events.table, opted], users


def _estimates(rule: RuleData, min_cell: int, view: RuleView) -> None:
    rows, forest_rows = [], []
    for row in rule.estimates:
        shown = estimate_shown(row, min_cell)
        if shown:
            view.shown_estimates[row.group] = row
        prior_low, prior_high = row.prior_ci
        rows.append([
            row.group,
            _hr(row.ci_low, row.hr, row.ci_high) if shown else "too few events to show",
            _hr(prior_low, row.prior_hr, prior_high),
            _hr(row.posterior_low, row.posterior_hr, row.posterior_high),
            f"{row.p_harm:.2f}", f"{row.p_safe:.2f}",
        ])  # fmt: skip
        marks = [plots.Interval("prior", row.prior_hr, prior_low, prior_high),
                 plots.Interval("posterior", row.posterior_hr, row.posterior_low, row.posterior_high)]  # fmt: skip
        if shown and row.ci_low is not None and row.ci_high is not None and row.hr is not None:
            marks.insert(0, plots.Interval("local", row.hr, row.ci_low, row.ci_high))
        forest_rows.append((f"{row.group} vs {REFERENCE}", marks))
    view.estimates = Table(
        f"{rule.rule}-estimates", "Hazard ratio on the drug, against the reference phenotype",
        ["Genotype group", "This site: HR (95% CI)", "Published: HR (95% CI)", "Combined: HR (95% interval)",
         "P(harm)", "P(safe)"], rows,
    )  # fmt: skip
    view.forest = plots.forest(f"{rule.drug}: hazard ratios by genotype group", forest_rows)
    labels = sorted({(e.started_at, e.run_id) for e in rule.trend})
    trend_rows = []
    series: dict[str, list[plots.Interval | None]] = {}
    for group in rule.groups[1:]:
        points: list[plots.Interval | None] = []
        for started, run_id in labels:
            row = next((e for e in rule.trend if e.run_id == run_id and e.group == group), None)
            shown = row is not None and estimate_shown(row, min_cell)
            points.append(
                plots.Interval("local", row.hr, row.ci_low, row.ci_high)
                if shown and row and row.hr and row.ci_low and row.ci_high else None
            )  # fmt: skip
            if row is not None:
                trend_rows.append([f"{started:%Y-%m-%d %H:%M}", group,
                                   _hr(row.ci_low, row.hr, row.ci_high) if shown else "too few events to show",
                                   _hr(row.posterior_low, row.posterior_hr, row.posterior_high)])  # fmt: skip
        series[group] = points
    view.trend = Table(f"{rule.rule}-trend", "Estimates across cycles", ["Cycle", "Genotype group",
                       "This site: HR (95% CI)", "Combined: HR (95% interval)"], trend_rows)  # fmt: skip
    view.trend_plot = plots.trend(
        f"{rule.drug}: this site's hazard ratio across cycles", [f"{s:%m-%d %H:%M}" for s, _ in labels], series
    )


def _strength(rule: RuleData) -> list[Table]:
    history = Table(f"{rule.rule}-tier-history", "Tier history (changes and proposals)",
                    ["When", "Genotype group", "Before", "After", "Action", "Reason", "By"],
                    [[f"{h.decided_at:%Y-%m-%d %H:%M}", h.group, h.tier_before or "rule file",
                      h.tier_after or "rule file", h.action, h.reason, h.by or "–"] for h in rule.history])  # fmt: skip
    pending = Table(f"{rule.rule}-pending", "Proposals awaiting a pharmacist's approval",
                    ["#", "Genotype group", "Change", "Reason", "Proposed"],
                    [[str(p.proposal_id), p.group, f"{p.tier_before} → {p.tier_after}", p.reason,
                      f"{p.created_at:%Y-%m-%d}"] for p in rule.proposals],
                    note="Approve with: pgx-loop strength approve N --by NAME")  # fmt: skip
    bounds = Table(f"{rule.rule}-bounds", "Tiers now, with their floors and ceilings",
                   ["Genotype group", "Tier", "Floor", "Ceiling"],
                   [[b.group, b.tier, b.floor, b.ceiling] for b in rule.bounds])  # fmt: skip
    return [history, pending, bounds]


def _acceptance(result: Suppressed, i: int) -> str:
    return percent(result.cell(i, 0), None if result.cell(i, 0) is None or result.cell(i, 1) is None
                   else result.grid[i][0] + result.grid[i][1])  # fmt: skip


def _alerts(rule: RuleData, min_cell: int) -> tuple[list[Table], CountTable]:
    tiers = sorted(rule.cards)
    cards = count_table(f"{rule.rule}-alerts", "Cards shown, by tier, and what clinicians answered", "Tier", tiers,
                        list(FEEDBACK), [list(rule.cards[t]) for t in tiers], min_cell, total="cards shown",
                        derived={"accepted of answered": _acceptance})  # fmt: skip
    overridden_total = cards.result.hidden[-1][1]
    reasons = list(rule.override_reasons)
    by_reason = count_table(
        f"{rule.rule}-override-reasons", "Override reasons", "Reason", reasons, ["overrides"],
        [[rule.override_reasons[r]] for r in reasons], min_cell,
        hide=frozenset({(len(reasons), 0), (len(reasons), 1)}) if overridden_total else frozenset(),
    )  # fmt: skip
    tables = [cards.table, by_reason.table]
    if rule.changed is not None:
        changed = count_table(
            f"{rule.rule}-order-changed", "Was the order changed after the card?", "Cards",
            ["all shown"], ["changed", "not changed"], [list(rule.changed)], min_cell, total="cards shown",
            hide=frozenset({(0, 2), (1, 2)}) if cards.grand_total_hidden else frozenset(),
            derived={"changed": lambda r, i: percent(r.cell(i, 0), r.cell(i, 2))},
            note="Changed: within 7 days of the card, the patient started a comparator "
            f"({', '.join(rule.comparators)}) and not {rule.drug} (OMOP drug_exposure).",
        )  # fmt: skip
        tables.append(changed.table)
    return tables, cards


def _rate_ratio(cells: dict[str, tuple[int, int, float]], group: str, min_cell: int) -> str:
    """Crude incidence rate ratio (group vs reference, on the drug) with a Wald 95% CI; hidden on small counts."""
    _users, events, years = cells.get(group, (0, 0, 0.0))
    _, reference_events, reference_years = cells.get(REFERENCE, (0, 0, 0.0))
    if events <= min_cell or reference_events <= min_cell or not years or not reference_years:
        return "too few events"
    ratio = (events / years) / (reference_events / reference_years)
    se = math.sqrt(1 / events + 1 / reference_events)
    return _hr(ratio * math.exp(-1.96 * se), ratio, ratio * math.exp(1.96 * se))


def _equity(rule: RuleData, min_cell: int, users: CountTable, cards: CountTable) -> list[Table]:
    populations = sorted(rule.equity)
    groups = rule.groups
    drug_total_hidden = users.result.hidden[-1][0]
    last = (len(populations), len(groups))
    by_population = count_table(
        f"{rule.rule}-equity-users", f"New users of {rule.drug} by population group and genotype group",
        "Population group", populations, groups, [[rule.equity[p].get(g, (0, 0, 0))[0] for g in groups]
                                                  for p in populations], min_cell,
        hide=frozenset({last}) if drug_total_hidden else frozenset(),
        derived={f"crude rate ratio, {g} vs {REFERENCE}": (
            lambda result, i, g=g: _rate_ratio(rule.equity[populations[i]], g, min_cell) if i < len(populations)
            else "") for g in groups[1:]},
        note="Crude incidence rate ratios on the drug, not adjusted for age, sex or covariates; "
        f"shown only when both event counts exceed {min_cell}.",
    )  # fmt: skip
    tables = [by_population.table]
    if rule.alerts_by_population:
        names = sorted(rule.alerts_by_population)
        alerts = count_table(
            f"{rule.rule}-equity-alerts", "Cards shown by population group, and what clinicians answered",
            "Population group", names, list(FEEDBACK), [list(rule.alerts_by_population[n]) for n in names], min_cell,
            total="cards shown", derived={"accepted of answered": _acceptance},
            hide=frozenset({(len(names), 3)}) if cards.grand_total_hidden else frozenset(),
        )  # fmt: skip
        tables.append(alerts.table)
    return tables


def _coverage(data: ReportData, min_cell: int) -> list[Table]:
    names = sorted(data.coverage)

    def tested(result: Suppressed, i: int) -> str:
        usable, indeterminate, total = result.cell(i, 0), result.cell(i, 1), result.cell(i, 3)
        return HIDDEN if None in (usable, indeterminate) else percent(usable + indeterminate, total)  # type: ignore[operator]

    def indeterminate(result: Suppressed, i: int) -> str:
        usable, undetermined = result.cell(i, 0), result.cell(i, 1)
        return HIDDEN if None in (usable, undetermined) else percent(undetermined, usable + undetermined)  # type: ignore[operator]

    table = count_table(
        "equity-result-coverage", "Result coverage by population group", "Population group", names,
        ["usable result", "only Indeterminate", "no result"],
        [[c.determinate, c.indeterminate, c.untested] for c in (data.coverage[n] for n in names)], min_cell,
        total="persons", derived={"tested": tested, "Indeterminate of tested": indeterminate},
        note="Population groups: Hispanic or Latino (any race), otherwise the OMOP race concept.",
    )  # fmt: skip
    return [table.table]


def _quality(data: ReportData, min_cell: int) -> list[Table]:
    q = data.quality
    results = count_table("quality-results", "Persons with and without a genotype result", "Persons", ["all"],
                          ["with a result", "without a result"], [[q.persons - q.without_results, q.without_results]],
                          min_cell, total="persons")  # fmt: skip

    def lone(value: int) -> str:
        return HIDDEN if small(value, min_cell) else f"{value:,}"

    problems = Table("quality-problems", "Result and event-log problems", ["Check", "Count or time"], [
        ["Results naming an allele the gene definitions do not know", lone(q.unknown_alleles)],
        ["Results that are not a diplotype", lone(q.unreadable)],
        ["Persons with disagreeing results for one gene (different diplotypes)", lone(q.disagreeing)],
        ["... of which the diplotypes give different phenotypes", lone(q.disagreeing_phenotype)],
        ["Newest event in the log", f"{q.newest_event:%Y-%m-%d %H:%M} UTC" if q.newest_event else "none"],
        ["Last ingestion of the event log", f"{q.last_ingested:%Y-%m-%d %H:%M} UTC" if q.last_ingested else "never"],
        ["Event log not ingested yet", "not checked" if q.unread_bytes is None else f"{q.unread_bytes:,} bytes"],
    ])  # fmt: skip
    return [results.table, problems]


def build_view(data: ReportData, min_cell: int) -> ReportView:
    """Suppress and format everything ``data`` holds."""
    rules = []
    for rule in data.rules:
        view = RuleView(rule)
        view.cohort, users = _cohort(rule, min_cell)
        _estimates(rule, min_cell, view)
        view.strength = _strength(rule)
        view.alerts, cards = _alerts(rule, min_cell)
        view.equity = _equity(rule, min_cell, users, cards)
        rules.append(view)
    report = ReportView(data, min_cell, rules, _coverage(data, min_cell), _quality(data, min_cell))
    report.summary = summarise(report)
    return report
