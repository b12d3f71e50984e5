"""From report data to what is shown: tables of display strings with small cells suppressed.

Every number a reader sees (HTML, CSV or the summary) comes from these tables, so suppression is
applied once, here. Counts go through analytics.report.suppression with their totals; rates,
percentages and ratios computed from a hidden count are hidden too; a hazard ratio is shown only
when the events it rests on are not small.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from analytics.report import plots
from analytics.report.data import ARMS, FEEDBACK, EstimateRow, ReportData, RuleData
from analytics.report.summary import summarise
from analytics.report.suppression import Suppressed, small, suppress
from analytics.report.view_model import HIDDEN, CountTable, ReportView, RuleView, Table
from analytics.study.cohort import REFERENCE

TOTAL = "Total"
VALIDITY = Path(__file__).with_name("validity.json")  # written by bench/learning_validity.py --write
MIN_TREND_CYCLES = 3


def count(value: int | None) -> str:
    return HIDDEN if value is None else f"{value:,}"


def percent(part: int | None, whole: int | None) -> str:
    if part is None or whole is None:
        return HIDDEN
    return "–" if whole == 0 else f"{100 * part / whole:.0f}%"


@dataclass
class CountSpec:
    """A count table before suppression; ``derived`` adds columns computed per row from the suppressed grid."""

    name: str
    title: str
    corner: str
    rows: list[str]
    columns: list[str]
    counts: list[list[int]]
    total: str = TOTAL
    note: str = ""
    derived: dict[str, Callable[[Suppressed, int], str]] = field(default_factory=dict)


# (table, grid entry, other table, grid entry): the same number shown in two tables
Link = tuple[str, tuple[int, int], str, tuple[int, int]]


def count_table(spec: CountSpec, min_cell: int, hide: frozenset[tuple[int, int]] = frozenset()) -> CountTable:
    """A count table with row and column totals, suppressed."""
    result = suppress(spec.counts, min_cell, hide, columns=len(spec.columns))
    width = len(spec.columns) + (len(spec.columns) > 1)  # one column: its row totals are the cells themselves
    shown = []
    for i, label in enumerate([*spec.rows, TOTAL]):
        values = [count(result.cell(i, j)) for j in range(width)]
        shown.append([label, *values, *(fn(result, i) for fn in spec.derived.values())])
    totals = [spec.total] if len(spec.columns) > 1 else []
    columns = [spec.corner, *spec.columns, *totals, *spec.derived]
    return CountTable(Table(spec.name, spec.title, columns, shown, spec.note), result)


def suppress_together(specs: dict[str, CountSpec], links: list[Link], min_cell: int) -> dict[str, CountTable]:
    """Suppress tables that show the same numbers (one's total is another's cell), so that what one hides,
    the others hide too: otherwise a reader could take from one table what the other suppressed."""
    hides: dict[str, frozenset[tuple[int, int]]] = {name: frozenset() for name in specs}
    while True:
        built = {name: count_table(spec, min_cell, hides[name]) for name, spec in specs.items()}
        grown = {name: set(hide) for name, hide in hides.items()}
        for a, at_a, b, at_b in links:
            if a in built and b in built:
                if built[a].result.hidden[at_a[0]][at_a[1]]:
                    grown[b].add(at_b)
                if built[b].result.hidden[at_b[0]][at_b[1]]:
                    grown[a].add(at_a)
        if all(grown[name] == hides[name] for name in specs):
            return built
        hides = {name: frozenset(hide) for name, hide in grown.items()}


def _hr(low: float | None, hr: float | None, high: float | None) -> str:
    return "–" if hr is None or low is None or high is None else f"{hr:.2f} ({low:.2f} to {high:.2f})"


def estimate_shown(row: EstimateRow, min_cell: int) -> bool:
    """A local estimate is shown only when neither event count it rests on is small."""
    return row.hr is not None and not small(row.events, min_cell) and not small(row.reference_events, min_cell)


def _cohort(rule: RuleData) -> dict[str, CountSpec]:
    arms = [rule.drug, "comparators (" + ", ".join(rule.comparators) + ")"]

    def rate(arm: int) -> Callable[[Suppressed, int], str]:
        def per_100(result: Suppressed, i: int) -> str:
            events = result.cell(i, arm)
            if i >= len(rule.groups) or events is None:
                return HIDDEN if events is None else ""
            years = rule.person_years[rule.groups[i]][arm]
            return f"{100 * events / years:.1f}" if years else "–"

        return per_100

    return {
        "users": CountSpec(f"{rule.rule}-cohort-users", "New users", "Genotype group", rule.groups, arms,
                           [list(rule.users[g]) for g in rule.groups]),
        "events": CountSpec(f"{rule.rule}-cohort-events", "Outcome events", "Genotype group", rule.groups, arms,
                            [list(rule.events[g]) for g in rule.groups],
                            derived={f"per 100 person-years, {name}": rate(j) for j, name in enumerate(ARMS)}),
    }  # fmt: skip


def _opt_outs(rule: RuleData, min_cell: int) -> Table:
    return Table(f"{rule.rule}-cohort-opt-outs", "Research opt-outs excluded", ["Persons"],
                 [[HIDDEN if small(rule.opted_out, min_cell) else f"{rule.opted_out:,}"]])  # fmt: skip


def _number(value: float | None, shown: bool = True) -> float | str:
    return "" if value is None or not shown else round(value, 4)


def _estimates(rule: RuleData, min_cell: int, view: RuleView, cycles: int) -> None:
    rows, data, forest_rows = [], [], []
    for row in rule.estimates:
        shown = estimate_shown(row, min_cell)
        if shown:
            view.shown_estimates[row.group] = row
        prior_low, prior_high = row.prior_ci
        rows.append([
            row.group,
            _hr(row.ci_low, row.hr, row.ci_high) if shown else "too few events to show",
            _hr(row.interaction_low, row.interaction_hr, row.interaction_high) if shown else "too few events to show",
            _hr(prior_low, row.prior_hr, prior_high),
            _hr(row.posterior_low, row.posterior_hr, row.posterior_high),
            f"{row.p_harm:.2f}", f"{row.p_safe:.2f}",
        ])  # fmt: skip
        data.append([row.group, *(_number(v, shown) for v in (row.hr, row.ci_low, row.ci_high)),
                     *(_number(v, shown) for v in (row.interaction_hr, row.interaction_low, row.interaction_high)),
                     "" if small(row.events, min_cell) else row.events,
                     "" if small(row.reference_events, min_cell) else row.reference_events,
                     *(_number(v) for v in (row.prior_hr, prior_low, prior_high, row.posterior_hr, row.posterior_low,
                                            row.posterior_high, row.p_harm, row.p_safe))])  # fmt: skip
        marks = [plots.Interval("prior", row.prior_hr, prior_low, prior_high),
                 plots.Interval("posterior", row.posterior_hr, row.posterior_low, row.posterior_high)]  # fmt: skip
        if shown and row.ci_low is not None and row.ci_high is not None and row.hr is not None:
            marks.insert(0, plots.Interval("local", row.hr, row.ci_low, row.ci_high))
        forest_rows.append((f"{row.group} vs {REFERENCE}", marks))
    view.estimates = Table(
        f"{rule.rule}-estimates", "Hazard ratio by genotype group, against the reference group",
        ["Genotype group", f"This site, on {rule.drug}: HR (95% CI)",
         f"This site, {rule.drug} vs comparators: ratio of HRs (95% CI)", "Published: HR (95% CI)",
         "Combined: HR (95% interval)", "P(harm)", "P(safe)"], rows,
        note=f"The first column compares each genotype group with the reference group among patients on {rule.drug}; "
        "it is on the same scale as the published estimate, so it is the one combined with it, and the one tier "
        f"decisions use. The second divides that by the same comparison among patients on the comparators "
        f"({', '.join(rule.comparators)}), which the genotype should not affect: whatever raises risk with the "
        "genotype but not through the drug (ancestry, for one) cancels out. When the two disagree, suspect such "
        "confounding before trusting the first.",
        data=data,
        data_columns=["group", "hr", "ci_low", "ci_high", "interaction_hr", "interaction_ci_low",
                      "interaction_ci_high", "events", "reference_events", "prior_hr", "prior_ci_low",
                      "prior_ci_high", "combined_hr", "combined_low", "combined_high", "p_harm", "p_safe"],
    )  # fmt: skip
    view.forest = plots.forest(f"{rule.drug}: hazard ratios by genotype group", forest_rows)
    labels = sorted({(e.started_at, e.run_id) for e in rule.trend})
    trend_rows, trend_data = [], []
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
                combined = (row.posterior_hr, row.posterior_low, row.posterior_high)
                trend_data.append([f"{started:%Y-%m-%d %H:%M}", group,
                                   *(_number(v, shown) for v in (row.hr, row.ci_low, row.ci_high)),
                                   *(_number(v) for v in combined)])  # fmt: skip
        series[group] = points
    view.trend = Table(f"{rule.rule}-trend", "Estimates across cycles", ["Cycle", "Genotype group",
                       "This site: HR (95% CI)", "Combined: HR (95% interval)"], trend_rows, data=trend_data,
                       data_columns=["cycle", "group", "hr", "ci_low", "ci_high", "combined_hr", "combined_low",
                                     "combined_high"])  # fmt: skip
    view.trend_plot = (
        plots.trend(f"{rule.drug}: this site's hazard ratio across cycles", [f"{s:%m-%d %H:%M}" for s, _ in labels],
                    series)
        if cycles >= MIN_TREND_CYCLES else ""
    )  # fmt: skip


def _strength(rule: RuleData) -> list[Table]:
    history = Table(f"{rule.rule}-tier-history", "Tier history (changes and proposals)",
                    ["When", "Genotype group", "Before", "After", "Action", "Reason", "By"],
                    [[f"{h.decided_at:%Y-%m-%d %H:%M}", h.group, h.tier_before or "as in the rule file",
                      h.tier_after or "as in the rule file", h.action, h.reason, h.by or "–"] for h in rule.history],
                    note="“As in the rule file”: no learned tier, so the tier the rule file sets.")  # fmt: skip
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


def _alerts(rule: RuleData) -> tuple[dict[str, CountSpec], list[Link]]:
    tiers = sorted(rule.cards)
    reasons = list(rule.override_reasons)
    specs = {
        "alerts": CountSpec(f"{rule.rule}-alerts", "Cards shown, by tier, and what clinicians answered", "Tier",
                            tiers, list(FEEDBACK), [list(rule.cards[t]) for t in tiers], total="cards shown",
                            derived={"accepted of answered": _acceptance}),
        "reasons": CountSpec(f"{rule.rule}-override-reasons", "Override reasons", "Reason", reasons, ["overrides"],
                             [[rule.override_reasons[r]] for r in reasons]),
    }  # fmt: skip
    shown, overridden = (len(tiers), len(FEEDBACK)), (len(tiers), 1)
    links: list[Link] = [("alerts", overridden, "reasons", (len(reasons), 0)),
                         ("alerts", overridden, "reasons", (len(reasons), 1))]  # fmt: skip
    if rule.changed is not None:
        specs["changed"] = CountSpec(
            f"{rule.rule}-order-changed", "Was the order changed after the card?", "Cards", ["all shown"],
            ["changed", "not changed"], [list(rule.changed)], total="cards shown",
            derived={"changed": lambda r, i: percent(r.cell(i, 0), r.cell(i, 2))},
            note="Changed: within 7 days of the card, the patient started a comparator "
            f"({', '.join(rule.comparators)}) and not {rule.drug} (OMOP drug_exposure).",
        )  # fmt: skip
        links += [("alerts", shown, "changed", (0, 2)), ("alerts", shown, "changed", (1, 2))]
    if rule.alerts_by_population:
        names = sorted(rule.alerts_by_population)
        specs["equity-alerts"] = CountSpec(
            f"{rule.rule}-equity-alerts", "Cards shown by population group, and what clinicians answered",
            "Population group", names, list(FEEDBACK), [list(rule.alerts_by_population[n]) for n in names],
            total="cards shown", derived={"accepted of answered": _acceptance},
        )  # fmt: skip
        links += [("alerts", (len(tiers), k), "equity-alerts", (len(names), k)) for k in range(len(FEEDBACK) + 1)]
    return specs, links


def _rate_ratio(cells: dict[str, tuple[int, int, float]], group: str, min_cell: int) -> str:
    """Crude incidence rate ratio (group vs reference, on the drug) with a Wald 95% CI; hidden on small counts."""
    _users, events, years = cells.get(group, (0, 0, 0.0))
    _, reference_events, reference_years = cells.get(REFERENCE, (0, 0, 0.0))
    if events <= min_cell or reference_events <= min_cell or not years or not reference_years:
        return "too few events"
    ratio = (events / years) / (reference_events / reference_years)
    se = math.sqrt(1 / events + 1 / reference_events)
    return _hr(ratio * math.exp(-1.96 * se), ratio, ratio * math.exp(1.96 * se))


def _equity(rule: RuleData, min_cell: int) -> tuple[dict[str, CountSpec], list[Link]]:
    """New users of the drug by population and genotype group: its column totals are the cohort's drug column."""
    populations = sorted(rule.equity)
    groups = rule.groups
    spec = CountSpec(
        f"{rule.rule}-equity-users", f"New users of {rule.drug} by population group and genotype group",
        "Population group", populations, groups,
        [[rule.equity[p].get(g, (0, 0, 0))[0] for g in groups] for p in populations],
        derived={f"crude rate ratio, {g} vs {REFERENCE}": (
            lambda result, i, g=g: _rate_ratio(rule.equity[populations[i]], g, min_cell) if i < len(populations)
            else "") for g in groups[1:]},
        note="Crude incidence rate ratios on the drug, not adjusted for age, sex or covariates; "
        f"shown only when both event counts exceed {min_cell}.",
    )  # fmt: skip
    links: list[Link] = [("users", (k, 0), "equity-users", (len(populations), k)) for k in range(len(groups))]
    links.append(("users", (len(groups), 0), "equity-users", (len(populations), len(groups))))
    return {"equity-users": spec}, links


def _coverage(data: ReportData) -> CountSpec:
    names = sorted(data.coverage)

    def tested(result: Suppressed, i: int) -> str:
        usable, indeterminate, total = result.cell(i, 0), result.cell(i, 1), result.cell(i, 3)
        return HIDDEN if usable is None or indeterminate is None else percent(usable + indeterminate, total)

    def indeterminate(result: Suppressed, i: int) -> str:
        usable, undetermined = result.cell(i, 0), result.cell(i, 1)
        return HIDDEN if usable is None or undetermined is None else percent(undetermined, usable + undetermined)

    return CountSpec(
        "equity-result-coverage", "Result coverage by population group", "Population group", names,
        ["usable result", "only Indeterminate", "no result"],
        [[c.determinate, c.indeterminate, c.untested] for c in (data.coverage[n] for n in names)],
        total="persons", derived={"tested": tested, "Indeterminate of tested": indeterminate},
        note="Population groups: Hispanic or Latino (any race), otherwise the OMOP race concept.",
    )  # fmt: skip


def _quality(data: ReportData, min_cell: int) -> tuple[CountSpec, Table]:
    q = data.quality
    results = CountSpec("quality-results", "Persons with and without a genotype result", "Persons", ["all"],
                        ["with a result", "without a result"], [[q.persons - q.without_results, q.without_results]],
                        total="persons")  # fmt: skip

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
        ["Feedback for unknown cards (not counted anywhere in this report)", lone(q.unknown_card_feedback)],
    ])  # fmt: skip
    return results, problems


def _rule_view(rule: RuleData, min_cell: int, cycles: int) -> RuleView:
    view = RuleView(rule)
    alerts, alert_links = _alerts(rule)
    equity, equity_links = _equity(rule, min_cell)
    tables = suppress_together({**_cohort(rule), **alerts, **equity}, alert_links + equity_links, min_cell)
    view.cohort = [tables["users"].table, tables["events"].table, _opt_outs(rule, min_cell)]
    _estimates(rule, min_cell, view, cycles)
    view.strength = _strength(rule)
    view.alerts = [tables[name].table for name in ("alerts", "reasons", "changed") if name in tables]
    view.equity = [tables[name].table for name in ("equity-users", "equity-alerts") if name in tables]
    return view


def build_view(data: ReportData, min_cell: int) -> ReportView:
    """Suppress and format everything ``data`` holds."""
    results, problems = _quality(data, min_cell)
    coverage = _coverage(data)
    # Persons without a result appear in both tables (as "no result" by group, and in all).
    links: list[Link] = [("coverage", (len(coverage.rows), 2), "results", (0, 1)),
                         ("coverage", (len(coverage.rows), 2), "results", (1, 1)),
                         ("coverage", (len(coverage.rows), 3), "results", (0, 2)),
                         ("coverage", (len(coverage.rows), 3), "results", (1, 2))]  # fmt: skip
    shared = suppress_together({"coverage": coverage, "results": results}, links, min_cell)
    report = ReportView(data, min_cell, [_rule_view(rule, min_cell, data.runs) for rule in data.rules],
                        [shared["coverage"].table], [shared["results"].table, problems])  # fmt: skip
    report.summary = summarise(report)
    report.methods = methods_tables(VALIDITY)
    return report


def methods_tables(path: Path) -> list[Table]:
    """The validity study's figures (bench/learning_validity.py), for the report's methods section:
    a year of nightly looks (false escalation and power), then bias and coverage per scenario."""
    try:
        study = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    looks = _looks_table(study)
    return [t for t in (looks, _scenarios_table(study)) if t is not None]


def _looks_table(study: dict) -> Table | None:
    rows, data = [], []
    for group, by_hr in study.get("sequential", {}).get("groups", {}).items():
        for hr, r in sorted(by_hr.items(), key=lambda item: float(item[0])):
            low, high = r["ci95"]
            top_low, top_high = r.get("highest_cell_ci95", (None, None))
            top = f"{r['highest_cell']:.0%}"
            if top_low is not None:  # studies written before the per-cell intervals have only the share
                top = (f"{r['highest_cell_escalations']} = {top} ({top_low:.0%}-{top_high:.0%}; "
                       f"{r['highest_cell_scenario']})")  # fmt: skip
            draws_low, draws_high = r.get("ci95_independent_draws", (None, None))
            draws_only = "–" if draws_low is None else f"{draws_low:.1%}-{draws_high:.1%} ({r['independent_draws']})"
            rows.append([group, hr, "false alarm" if float(hr) <= 1 else "power", str(r["seeds"]),
                         f"{r['escalated']:.1%} ({low:.1%}-{high:.1%})", draws_only, top,
                         f"{r['fixed_rule']:.1%}"])  # fmt: skip
            data.append([group, float(hr), r["seeds"], r["escalated"], low, high, r["highest_cell"], r["fixed_rule"],
                         top_low, top_high, r.get("independent_draws"), draws_low, draws_high,
                         r.get("design_effect")])  # fmt: skip
    if not rows:
        return None
    return Table(
        "methods-looks", "A year of nightly looks: how often a group escalates (all simulated sites, every scenario)",
        ["Genotype group", "True HR", "Meaning", "Simulated site-years", "Escalated within the year (95% CI)",
         "95% CI counting only the independent draws (draws)", "Highest scenario (its seeds, 95% CI)",
         "With a fixed threshold instead"], rows,
        note="Each simulated site is looked at monthly over a year (twelve cycles on growing data), the real policy "
        "deciding. At a true HR of 1 or below an escalation is a false alarm: the sequential boundary (Lan-DeMets "
        "alpha spending, Lan & DeMets, Biometrika 1983;70:659-663, on the score test of HR = 1 with its "
        "information from the events expected under HR = 1, Jennison & Turnbull 2000) holds it at or below 5% "
        "per group per year. "
        "Above 1 it is the power: the share of sites where the loop acted within the year. The scenarios of one "
        "simulated draw (seed, ancestry mix and size) share its persons, so their site-years are not independent: "
        "the pooled share's 95% interval uses every site-year with the draws as clusters (Wilson at the effective "
        "sample size of Korn & Graubard, Survey Methodology 1998;24:193-201); the next column counts only the "
        "independent draws, the conservative bound. The highest scenario's interval is a Wilson interval over its "
        "own seeds (6 of 20 reads 30%, 15-52%). The last column is "
        "the earlier rule (local 99% CI above 1 at any look), for comparison.",
        data=data,
        data_columns=["group", "true_hr", "site_years", "escalated_per_year", "ci_low", "ci_high",
                      "highest_scenario", "fixed_rule", "highest_scenario_ci_low", "highest_scenario_ci_high",
                      "independent_draws", "draws_only_ci_low", "draws_only_ci_high", "design_effect"],
    )  # fmt: skip


def _scenarios_table(study: dict) -> Table | None:
    rows, data = [], []
    for r in sorted(study.get("rows", []), key=lambda r: (r["looks"], r["persons"], r["baseline"], r["ancestry"],
                                                           r["hr"], r["group"])):  # fmt: skip
        yearly = r["looks"] > 1
        low, high = r.get("escalated_ci95", (None, None))
        escalated = f"{r['escalated']:.0%}"
        if low is not None:
            escalated = f"{r['escalations']}/{r['seeds']} ({low:.0%}-{high:.0%})"
        bias = _fmt(r["bias"], "+.3f")
        if r.get("bias_mcse") is not None:
            bias += f" ± {r['bias_mcse']:.3f}"
        rows.append([f"{r['hr']:g}", f"{100 * r['baseline']:g}%", r["ancestry"], f"{r['persons']:,}", r["group"],
                     str(r["seeds"]), f"{r['mean_events']:.0f}", bias,
                     _fmt(r["empirical_se"], ".3f"), _fmt(r["model_se"], ".3f"), _fmt(r["coverage"], ".0%"),
                     escalated if yearly else "not run"])  # fmt: skip
        keys = (
            "hr",
            "baseline",
            "ancestry",
            "persons",
            "group",
            "seeds",
            "mean_events",
            "bias",
            "empirical_se",
            "model_se",
            "coverage",
        )
        data.append([r[k] for k in keys] + [r["escalated"] if yearly else "", r.get("bias_mcse"),
                                            low if yearly else None, high if yearly else None])  # fmt: skip
    if not rows:
        return None
    return Table(
        "methods-validity", f"How the estimator and the policy behave on simulated data ({study.get('rule', '')})",
        ["True HR", "Baseline 1-year risk", "Ancestry mix", "Persons", "Genotype group", "Seeds", "Mean events",
         "Bias of log HR (± Monte Carlo SE)", "SE across seeds", "Model SE", "95% CI coverage",
         "Escalated within a year (95% CI)"], rows,
        note="Bias: mean estimated minus true log hazard ratio (target within ±0.05 where there are 100 events or "
        "more), with its Monte Carlo SE (SE across seeds / √seeds): a bias within about twice it can be the "
        "seeds' own, and the scenarios of one ancestry mix and size share their seeds (the same simulated persons "
        "under every true HR and baseline risk), so they err together. Coverage: share of 95% confidence intervals "
        "holding the true HR (target 93-97%); over n seeds it has a Monte Carlo SE of its own, √(0.95 × 0.05 / n), "
        "2.2% at 100 seeds. Escalated within a year: the simulated sites where some monthly "
        "cycle of the year escalated the group, of all seeds, with a Wilson 95% interval; at a true HR of 1 (or "
        "below) that is a false alarm, and the sequential boundary holds it at or below 5%; above 1 it is "
        "the power. Run: python bench/learning_validity.py (see its --help).",
        data=data,
        data_columns=["true_hr", "baseline_risk", "ancestry", "persons", "group", "seeds", "mean_events", "bias",
                      "empirical_se", "model_se", "coverage", "escalated_per_year", "bias_mcse",
                      "escalated_ci_low", "escalated_ci_high"],
    )  # fmt: skip


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)
