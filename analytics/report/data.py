"""What a report shows, read from the analytics database into plain rows (no suppression yet).

Everything is read on one read-only connection. What the report shows of the OMOP data (cohort,
equity, result coverage) is what the latest cycle stored (analytics.study.report_counts): the same
aggregates whether the OMOP tables were in the store or queried in place (``--omop``), counting exactly
the patients the estimates rest on.
Cards are linked to persons by the pseudonym the service logged: the keyed hash of the patient id
the EHR sends, which OMOP holds as ``person.person_source_value``. Without the site key that link
(and with it alerts by group and "order changed") is not available, and the report says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from analytics.data.events import read_offsets, segments
from analytics.data.store import first_row, scalar, table_exists
from analytics.study import strengths
from analytics.study.cohort import REFERENCE, Study, build
from analytics.study.estimate import Z95
from analytics.study.report_counts import UNKNOWN_GROUP, ResultChecks, allele_checks, group_label_sql
from engine.decision.cards import offered_reasons
from engine.genotype.phenotyper import call_diplotype
from engine.rulebook.library import Library
from engine.runtime.identifiers import Identifiers

CHANGE_WINDOW_DAYS = 7
ARMS = ("drug", "comparators")
FEEDBACK = ("accepted", "overridden", "no feedback")


@dataclass(frozen=True)
class Run:
    run_id: str
    started_at: datetime
    library_version: str | None
    opted_out_excluded: int
    events_ingested: int


@dataclass(frozen=True)
class EstimateRow:
    """One group's within-drug estimate in one cycle."""

    run_id: str
    started_at: datetime
    rule: str
    group: str
    events: int
    reference_events: int
    hr: float | None
    ci_low: float | None
    ci_high: float | None
    prior_hr: float
    prior_se: float
    posterior_hr: float
    posterior_low: float
    posterior_high: float
    p_harm: float
    p_safe: float
    interaction_hr: float | None = None  # the genotype effect on the drug relative to the comparators
    interaction_low: float | None = None
    interaction_high: float | None = None

    @property
    def prior_ci(self) -> tuple[float, float]:
        log_hr = math.log(self.prior_hr)
        return math.exp(log_hr - Z95 * self.prior_se), math.exp(log_hr + Z95 * self.prior_se)


@dataclass(frozen=True)
class TierChange:
    decided_at: datetime
    group: str
    tier_before: str | None
    tier_after: str | None
    action: str
    reason: str
    by: str | None
    run_id: str | None


@dataclass(frozen=True)
class Proposal:
    proposal_id: int
    group: str
    tier_before: str
    tier_after: str
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class Bounds:
    group: str
    tier: str
    floor: str
    ceiling: str


@dataclass
class RuleData:
    """Everything the report shows about one rule with a learning section."""

    rule: str
    drug: str
    comparators: list[str]
    outcome: str
    groups: list[str]  # reference first
    reference_phenotypes: list[str] = field(default_factory=list)
    # cohort, on this data: group -> (drug, comparators)
    users: dict[str, tuple[int, int]] = field(default_factory=dict)
    events: dict[str, tuple[int, int]] = field(default_factory=dict)
    person_years: dict[str, tuple[float, float]] = field(default_factory=dict)
    opted_out: int = 0
    estimates: list[EstimateRow] = field(default_factory=list)  # latest cycle
    trend: list[EstimateRow] = field(default_factory=list)  # every cycle, oldest first
    history: list[TierChange] = field(default_factory=list)
    proposals: list[Proposal] = field(default_factory=list)
    bounds: list[Bounds] = field(default_factory=list)
    # alerts: tier -> (accepted, overridden, no feedback); reason -> overrides
    cards: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    override_reasons: dict[str, int] = field(default_factory=dict)
    changed: tuple[int, int] | None = None  # (changed, not changed); None without the pseudonym link
    # equity: population group -> genotype group -> (users on the drug, events, person-years)
    equity: dict[str, dict[str, tuple[int, int, float]]] = field(default_factory=dict)
    alerts_by_population: dict[str, tuple[int, int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Coverage:
    """Result coverage of one population group: persons with a usable call, Indeterminate only, untested."""

    determinate: int
    indeterminate: int
    untested: int


@dataclass(frozen=True)
class Quality:
    persons: int
    without_results: int
    unknown_alleles: int  # results naming an allele the gene definitions do not know
    unreadable: int  # results that are not a diplotype at all
    disagreeing: int  # person-genes with results of more than one diplotype
    disagreeing_phenotype: int  # ... whose diplotypes give different phenotypes
    newest_event: datetime | None
    last_ingested: datetime | None
    unread_bytes: int | None  # event-log bytes not ingested yet (None: log folder not given)
    unknown_card_feedback: int = 0  # feedback naming a card the service never showed: counted nowhere else


@dataclass
class ReportData:
    generated_at: datetime
    run: Run | None
    previous: Run | None
    runs: int
    rules: list[RuleData]
    coverage: dict[str, Coverage]
    quality: Quality
    linked: bool  # cards could be linked to persons
    in_place: bool = False  # the OMOP tables are not in the store (``--omop``): cards cannot be linked


def _runs(con: duckdb.DuckDBPyConnection) -> list[Run]:
    rows = con.execute(
        "SELECT run_id, started_at, library_version, coalesce(opted_out_excluded, 0), "
        "coalesce(events_ingested, 0) FROM analysis_run WHERE status = 'ok' ORDER BY started_at"
    ).fetchall()
    return [Run(*row) for row in rows]


def _estimates(con: duckdb.DuckDBPyConnection, rule: str) -> list[EstimateRow]:
    rows = con.execute(
        """SELECT e.run_id, r.started_at, e.rule, e.phenotype, e.events, e.reference_events, e.hr, e.ci_low, e.ci_high,
                  e.prior_hr, e.prior_se, e.posterior_hr, e.posterior_low, e.posterior_high, e.p_harm, e.p_safe,
                  i.hr, i.ci_low, i.ci_high
           FROM estimate e JOIN analysis_run r USING (run_id)
           LEFT JOIN estimate i ON i.run_id = e.run_id AND i.rule = e.rule AND i.phenotype = e.phenotype
            AND i.contrast = 'interaction'
           WHERE r.status = 'ok' AND e.rule = ? AND e.contrast = 'within-drug'
           ORDER BY r.started_at, e.phenotype""",
        [rule],
    ).fetchall()
    return [EstimateRow(*row) for row in rows]


def _cohort(con: duckdb.DuckDBPyConnection, data: RuleData, run: Run) -> None:
    """Users, events and person-years per genotype group and arm, and the same on the drug by population group,
    as ``run`` counted them."""
    rows = con.execute(
        "SELECT grp, target, population, persons, events, person_days FROM cohort_count WHERE run_id = ? AND rule = ?",
        [run.run_id, data.rule],
    ).fetchall()
    users = {g: [0, 0] for g in data.groups}
    events = {g: [0, 0] for g in data.groups}
    days = {g: [0.0, 0.0] for g in data.groups}
    for group, target, population, n, k, person_days in rows:
        if group not in users:  # a group the rule library no longer has
            continue
        arm = 0 if target else 1
        users[group][arm] += n
        events[group][arm] += k
        days[group][arm] += float(person_days or 0)
        if target:
            cell = data.equity.setdefault(population, {}).get(group, (0, 0, 0.0))
            data.equity[population][group] = (cell[0] + n, cell[1] + k, cell[2] + float(person_days or 0) / 365.25)
    data.users = {g: (a, b) for g, (a, b) in users.items()}
    data.events = {g: (a, b) for g, (a, b) in events.items()}
    data.person_years = {g: (a / 365.25, b / 365.25) for g, (a, b) in days.items()}
    opted_out = "SELECT coalesce(sum(persons), 0) FROM cohort_opt_out WHERE run_id = ? AND rule = ?"
    data.opted_out = int(scalar(con, opted_out, [run.run_id, data.rule]))


def _strength(con: duckdb.DuckDBPyConnection, library: Library, data: RuleData) -> None:
    rows = con.execute(
        """SELECT decided_at, phenotype, tier_before, tier_after, action, reason, approved_by, run_id
           FROM strength_audit WHERE rule = ?
             AND (tier_before IS DISTINCT FROM tier_after OR action LIKE 'propose%' OR action LIKE '%withdrawn%')
           ORDER BY audit_id""",
        [data.rule],
    ).fetchall()
    data.history = [TierChange(*row) for row in rows]
    rows = con.execute(
        """SELECT proposal_id, phenotype, tier_before, tier_after, reason, created_at FROM strength_proposal
           WHERE rule = ? AND status = 'pending' ORDER BY proposal_id""",
        [data.rule],
    ).fetchall()
    data.proposals = [Proposal(*row) for row in rows]
    rule = next(r for r in library.rules if r.id == data.rule)
    snapshot = strengths.latest(con)
    assert rule.learning is not None
    for group in rule.learning.groups:
        tier, floor, ceiling = strengths.current_tier(rule, group, snapshot)
        data.bounds.append(Bounds(group.label, tier, floor, ceiling))


def _pseudonyms(con: duckdb.DuckDBPyConnection, identifiers: Identifiers) -> None:
    """Temp table ``linked``(person_id, patient, population): the users of the study drugs, by pseudonym."""
    rows = con.execute(
        f"""SELECT p.person_id, p.person_source_value, {group_label_sql()} FROM person p
            WHERE p.person_source_value IS NOT NULL AND p.person_id IN (
                SELECT person_id FROM drug_exposure
                WHERE drug_concept_id IN (SELECT concept_id FROM target_concepts)
                   OR drug_concept_id IN (SELECT concept_id FROM comparator_concepts))"""
    ).fetchall()
    frame = pd.DataFrame(
        [(person, identifiers.pseudonym(str(source)), population) for person, source, population in rows],
        columns=["person_id", "patient", "population"],
    )
    con.register("linked_frame", frame)
    con.execute("CREATE OR REPLACE TEMP TABLE linked AS SELECT * FROM linked_frame")
    con.unregister("linked_frame")


def _alerts(con: duckdb.DuckDBPyConnection, data: RuleData, linked: bool, offered: list[str]) -> None:
    """Cards shown (not shadow) by tier and feedback; with the link, by population and whether the order changed.

    Only feedback naming a card the service showed counts. An override reason the card's rule did
    not offer (``offered``) counts as ``other``. The order counts as changed when, within
    CHANGE_WINDOW_DAYS of the card, the patient started a comparator and did not start the alerted drug.
    """
    con.execute("CREATE OR REPLACE TEMP TABLE offered_reasons AS SELECT unnest(?::VARCHAR[]) AS code", [offered])
    answers = """SELECT card, arg_max(outcome, time) AS outcome, arg_max(override_reason, time) AS reason
                 FROM cds_event WHERE type = 'feedback' GROUP BY card"""
    cards = f"""SELECT c.card, c.tier, c.patient, CAST(c.time AS DATE) AS day, coalesce(f.outcome, 'none') AS outcome,
                       CASE WHEN f.reason IN (SELECT code FROM offered_reasons) THEN f.reason
                            WHEN f.reason IS NOT NULL THEN 'other' END AS reason
                FROM cds_event c LEFT JOIN ({answers}) f USING (card)
                WHERE c.type = 'card' AND NOT coalesce(c.shadow, false) AND c.rule = ?"""
    rows = con.execute(
        f"""SELECT tier, count(*) FILTER (outcome = 'accepted'), count(*) FILTER (outcome = 'overridden'),
                   count(*) FILTER (outcome NOT IN ('accepted', 'overridden')) FROM ({cards}) GROUP BY tier
            ORDER BY tier""",
        [data.rule],
    ).fetchall()
    data.cards = {tier or "unknown": (a, o, n) for tier, a, o, n in rows}
    rows = con.execute(
        f"SELECT coalesce(reason, 'none given'), count(*) FROM ({cards}) WHERE outcome = 'overridden' GROUP BY 1 "
        "ORDER BY 2 DESC, 1",
        [data.rule],
    ).fetchall()
    data.override_reasons = dict(rows)
    if not linked:
        return
    row = first_row(
        con,
        f"""WITH shown AS ({cards}),
            started AS (
                SELECT s.card,
                       bool_or(d.drug_concept_id IN (SELECT concept_id FROM comparator_concepts)) AS comparator,
                       bool_or(d.drug_concept_id IN (SELECT concept_id FROM target_concepts)) AS drug
                FROM shown s JOIN linked l USING (patient)
                JOIN drug_exposure d ON d.person_id = l.person_id
                 AND d.drug_exposure_start_date BETWEEN s.day AND s.day + {CHANGE_WINDOW_DAYS}
                GROUP BY s.card)
            SELECT count(*) FILTER (coalesce(comparator AND NOT drug, false)),
                   count(*) FILTER (NOT coalesce(comparator AND NOT drug, false))
            FROM shown LEFT JOIN started USING (card)""",
        [data.rule],
    )
    data.changed = (int(row[0]), int(row[1])) if row else (0, 0)
    rows = con.execute(
        f"""SELECT coalesce(l.population, '{UNKNOWN_GROUP}'), count(*) FILTER (outcome = 'accepted'),
                   count(*) FILTER (outcome = 'overridden'), count(*) FILTER (outcome NOT IN ('accepted', 'overridden'))
            FROM ({cards}) s LEFT JOIN (SELECT DISTINCT patient, population FROM linked) l USING (patient)
            GROUP BY 1 ORDER BY 1""",
        [data.rule],
    ).fetchall()
    data.alerts_by_population = {population: (a, o, n) for population, a, o, n in rows}


def _coverage(con: duckdb.DuckDBPyConnection, run: Run | None) -> dict[str, Coverage]:
    """Per population group, as ``run`` counted them: persons with at least one usable call, only
    Indeterminate calls, or no result."""
    rows = con.execute(
        "SELECT population, determinate, indeterminate, untested FROM coverage_count WHERE run_id = ? "
        "ORDER BY population",
        [run.run_id if run else None],
    ).fetchall()
    return {population: Coverage(a, b, c) for population, a, b, c in rows}


def _quality(
    con: duckdb.DuckDBPyConnection, library: Library, events_dir: Path | Sequence[Path] | None,
    coverage: dict[str, Coverage], run: Run | None,
) -> Quality:  # fmt: skip
    """Result and event-log checks: on the store's ``pgx_result`` and ``cds_event``, or, for a cycle that
    queried OMOP where it lives, the result checks that cycle made there."""
    if table_exists(con, "person"):
        persons = int(scalar(con, "SELECT count(*) FROM person"))
        tested = "SELECT person_id FROM pgx_result"
        without = int(scalar(con, f"SELECT count(*) FROM person WHERE person_id NOT IN ({tested})"))
        checks = _result_checks(con, library)
    else:  # OMOP queried in place: the persons are counted where they are, with the coverage
        persons = sum(c.determinate + c.indeterminate + c.untested for c in coverage.values())
        without = sum(c.untested for c in coverage.values())
        found = table_exists(con, "quality_count") and first_row(
            con, "SELECT unknown_alleles, unreadable, disagreeing, disagreeing_phenotype FROM quality_count "
            "WHERE run_id = ?", [run.run_id if run else None])  # fmt: skip
        # A run from before the cycle made these checks where the data is: the store's own results, as then.
        checks = ResultChecks(*found) if found else _result_checks(con, library)
    newest, ingested = first_row(con, "SELECT max(time), max(ingested_at) FROM cds_event") or (None, None)
    stray = scalar(
        con,
        """SELECT count(*) FROM cds_event f WHERE f.type = 'feedback' AND NOT EXISTS (SELECT 1 FROM cds_event c
               WHERE c.type = 'card' AND c.card = f.card AND NOT coalesce(c.shadow, false))""",
    )
    return Quality(persons, without, checks.unknown_alleles, checks.unreadable, checks.disagreeing,
                   checks.disagreeing_phenotype, newest, ingested, _unread_bytes(con, events_dir),
                   int(stray))  # fmt: skip


def _result_checks(con: duckdb.DuckDBPyConnection, library: Library) -> ResultChecks:
    """The result checks on the store's ``pgx_result``."""
    # Distinct results: one loaded from a file and copied from OMOP ``measurement`` too is one result.
    pairs = con.execute(
        "SELECT gene, diplotype, count(*) FROM (SELECT DISTINCT person_id, result_date, gene, diplotype "
        "FROM pgx_result) GROUP BY ALL"
    ).fetchall()
    checks = allele_checks(pairs, library)
    phenotype = {(gene, d): call_diplotype(library.genes[gene], d).phenotype
                 for gene, d, _ in pairs if gene in library.genes}  # fmt: skip
    multiple = con.execute(
        "SELECT gene, list(DISTINCT diplotype) FROM pgx_result GROUP BY person_id, gene "
        "HAVING count(DISTINCT diplotype) > 1"
    ).fetchall()
    differing = sum(len({phenotype.get((gene, d)) for d in diplotypes}) > 1 for gene, diplotypes in multiple)
    return ResultChecks(checks.unknown_alleles, checks.unreadable, len(multiple), differing)


def _unread_bytes(con: duckdb.DuckDBPyConnection, events_dir: Path | Sequence[Path] | None) -> int | None:
    dirs = [events_dir] if isinstance(events_dir, Path) else list(events_dir or [])
    dirs = [directory for directory in dirs if directory.is_dir()]
    if not dirs:
        return None
    found = segments(dirs)
    read = read_offsets(con, found)
    return sum(max(0, path.stat().st_size - read[key]) for key, path in found)


class NoReportData(RuntimeError):
    """The database lacks what a report is made from; the message says what."""


def _has_source_values(con: duckdb.DuckDBPyConnection) -> bool:
    return "person_source_value" in {row[0] for row in con.execute("DESCRIBE person").fetchall()}


def collect(
    con: duckdb.DuckDBPyConnection, library: Library, *, identifiers: Identifiers | None = None,
    events_dir: Path | Sequence[Path] | None = None,
) -> ReportData:  # fmt: skip
    """Read everything a report shows. ``con`` may be read-only (only temp tables are created)."""
    missing = [table for table in ("pgx_result", "analysis_run") if not table_exists(con, table)]
    runs = _runs(con) if "analysis_run" not in missing else []
    in_place = not table_exists(con, "person")  # the OMOP tables are elsewhere: the cycles counted what is shown
    if in_place and not runs:
        missing.insert(0, "person")
    if missing:
        raise NoReportData(f"no {', '.join(missing)} table: load data and run a cycle first (pgx-loop analyze)")
    run = runs[-1] if runs else None
    linked = identifiers is not None and table_exists(con, "drug_exposure") and _has_source_values(con)
    rules = []
    for rule in library.rules:
        learning = rule.learning
        if learning is None:
            continue
        groups = [REFERENCE, *(g.label for g in learning.groups)]
        data = RuleData(rule.id, rule.drugs[0].name, [c.name for c in learning.comparators], learning.outcome.name,
                        groups, list(learning.reference))  # fmt: skip
        trend = _estimates(con, rule.id)
        data.trend = trend
        data.estimates = [e for e in trend if run and e.run_id == run.run_id]
        _strength(con, library, data)
        if run is not None:
            _cohort(con, data, run)
        if linked and identifiers is not None and table_exists(con, "person_phenotype"):
            build(con, Study(rule, learning))  # the concept sets, to find the users of the study drugs
            _pseudonyms(con, identifiers)
        _alerts(con, data, linked and table_exists(con, "linked"), [r.code for r in offered_reasons(rule)])
        rules.append(data)
    coverage = _coverage(con, run)
    return ReportData(
        generated_at=datetime.now(UTC),
        run=run,
        previous=runs[-2] if len(runs) > 1 else None,
        runs=len(runs),
        rules=rules,
        coverage=coverage,
        quality=_quality(con, library, events_dir, coverage, run),
        linked=linked,
        in_place=in_place,
    )
