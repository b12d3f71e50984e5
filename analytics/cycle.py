"""One analytics cycle: ingest events, estimate, decide, audit, publish. All or nothing.

A cycle holds an exclusive lock (two never run at once) and does all its database work in one
transaction: if anything fails (bad data, a crash in the middle), the transaction is rolled
back, so events, estimates, proposals and strengths stay as they were; the failure itself is
recorded in ``analysis_run``. The snapshot file is written from the database after commit.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from analytics.data.events import ingest
from analytics.data.genotypes import extract_measurements, refresh_phenotypes
from analytics.data.omop import REQUIRED, type_problems
from analytics.data.products import build_index, covered_ingredients, has_vocabulary, index_from_rows, products_sql
from analytics.data.products import publish as publish_products
from analytics.data.store import connect, count, first_row, table_exists
from analytics.settings import Paths
from analytics.sources import Source, SourceError, open_source
from analytics.sources.study import catalog, row_counts, study_cells
from analytics.study import strengths
from analytics.study.calibration import SystematicError, fit_systematic_error
from analytics.study.cohort import Catalog, Study, build, cells, recorded_query, store_catalog
from analytics.study.estimate import Estimate, estimate
from analytics.study.policy import Decision, Posterior, decide, update
from analytics.study.report_counts import (
    Run,
    cohort_counts,
    coverage_query,
    result_checks,
    store_checks,
    store_cohort,
    store_coverage,
)
from analytics.study.sequential import Look, replay
from engine.decision.learning import Group
from engine.decision.products import ProductIndex
from engine.decision.rules import Rule
from engine.decision.strengths import Snapshot
from engine.rulebook.library import Library
from engine.runtime.cycle_status import CycleOutcome, CycleStatus, write_status

log = logging.getLogger(__name__)
SNAPSHOT_TABLES = ("person", "observation_period", "drug_exposure", "condition_occurrence", "measurement",
                   "death", "pgx_result", "research_opt_out", "cds_event")  # fmt: skip


class CycleBusy(RuntimeError):
    """Another cycle holds the lock."""


class NoData(RuntimeError):
    """The database holds no OMOP data to learn from yet."""


class BadData(ValueError):
    """The OMOP tables are there but cannot be studied; the message names the columns."""


CellsOf = Callable[[Study], pd.DataFrame]  # a study's cells, wherever OMOP is


def store_cells(con: duckdb.DuckDBPyConnection) -> CellsOf:
    """Cells computed in the analytics store (OMOP copied into it: the default)."""

    built: dict[str, str] = {}  # what each study table was built from: negative controls share their rule's cohort

    def cells_of(study: Study) -> pd.DataFrame:
        build(con, study, built)
        return cells(con, study)

    return cells_of


def source_cells(source: Source, found: Catalog) -> CellsOf:
    """Cells computed in the site's engine (``--omop``): only they come back."""
    return lambda study: study_cells(source, study, found)


@dataclass(frozen=True)
class Inputs:
    """What a cycle reads of the OMOP data, wherever it is: the data snapshot, the product index, the cells,
    and the engine's query runner and catalog for the report's counts."""

    data: dict
    products: ProductIndex | None
    cells_of: CellsOf
    run: Run
    catalog: Catalog


@contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CycleBusy(f"another analytics cycle is running ({lock_path})") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class CycleResult:
    run_id: str
    status: str
    events_ingested: int = 0
    opted_out_excluded: int = 0
    snapshot_version: int = 0
    products: int | None = None  # products indexed from the OMOP vocabulary; None: no vocabulary
    rows_from_source: int | None = None  # rows that left the site's engine (``--omop``); None: OMOP in the store
    estimates: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "events_ingested": self.events_ingested,
            "opted_out_excluded": self.opted_out_excluded,
            "snapshot_version": self.snapshot_version,
            "products": self.products,
            "rows_from_source": self.rows_from_source,
            "seconds": round(self.seconds, 3),
            "estimates": self.estimates,
        }


def data_snapshot(con: duckdb.DuckDBPyConnection) -> dict:
    """Row counts and a content hash of every input table: what this cycle's estimates rest on."""
    snapshot = {}
    for table in SNAPSHOT_TABLES:
        if table_exists(con, table):
            rows, digest = first_row(con, f'SELECT count(*), bit_xor(hash(t)) FROM "{table}" t')
            snapshot[table] = {"rows": int(rows), "hash": f"{(digest or 0) & 0xFFFFFFFFFFFFFFFF:016x}"}
    return snapshot


def _safe_streak(con: duckdb.DuckDBPyConnection, rule: str, group: str) -> int:
    """Consecutive earlier cycles (newest first) whose evidence met the de-escalation bar."""
    rows = con.execute(
        """SELECT coalesce(json_extract(evidence, '$.safe_met')::BOOLEAN, false) FROM strength_audit
           WHERE rule = ? AND phenotype = ? AND run_id IS NOT NULL AND action <> 'approved'
           ORDER BY audit_id DESC LIMIT 12""",
        [rule, group],
    ).fetchall()
    streak = 0
    for (met,) in rows:
        if not met:
            break
        streak += 1
    return streak


YEAR_DAYS = 365.25


def _systematic_errors(inputs: Inputs, study: Study) -> dict[str, tuple[int, SystematicError | None]]:
    """Per group, how many negative controls are estimable and, when enough are, the systematic error they show.

    A control never recorded at this site (often a concept its vocabulary does not have, as in
    OHDSI's Eunomia sample) is not studied; one without events in a group is left out of that
    group's fit. Both are logged, never an error.
    """
    learning = study.learning
    found: dict[str, tuple[list[float], list[float]]] = {group.label: ([], []) for group in learning.groups}
    controls = learning.negative_controls
    # one query for all of them: a control never recorded here needs no study
    found_rows = inputs.run(recorded_query(controls, inputs.catalog)) if controls else None
    recorded = set() if found_rows is None else {int(row[0]) for row in found_rows.itertuples(index=False)}
    unrecorded = [control.name for k, control in enumerate(controls) if k not in recorded]
    if unrecorded:
        log.info("%s: negative controls never recorded at this site, not studied: %s", study.rule.id,
                 ", ".join(unrecorded))  # fmt: skip
    missing: dict[str, list[str]] = {}
    for outcome in (control for k, control in enumerate(controls) if k in recorded):
        control = Study(study.rule, learning.model_copy(update={"outcome": outcome}))
        for item in estimate(control, inputs.cells_of(control), ("within-drug",)):
            if item.log_hr is not None and item.se is not None:
                found[item.group][0].append(item.log_hr)
                found[item.group][1].append(item.se)
            else:
                missing.setdefault(item.group, []).append(outcome.name)
    needed = learning.policy.min_negative_controls
    for group, names in missing.items():
        log.info("%s, %s: negative controls without events among the study's patients: %s", study.rule.id, group,
                 ", ".join(names))  # fmt: skip
    if controls:
        log.info("%s: negative controls estimable per group: %s (calibration needs %d)", study.rule.id,
                 ", ".join(f"{g} {len(x)} of {len(controls)}" for g, (x, _) in found.items()), needed)  # fmt: skip
    return {
        group: (len(log_hrs), fit_systematic_error(log_hrs, ses) if len(log_hrs) >= needed else None)
        for group, (log_hrs, ses) in found.items()
    }


def _sequential_look(
    con: duckdb.DuckDBPyConnection, rule: Rule, group: Group, local: Estimate, now: datetime
) -> tuple[float, dict | None]:
    """This cycle's boundary on the local z, and the look to record (None: no estimate, no look).

    The surveillance year starts at a group's first look and lasts 365 days; the looks of the
    current year are read back from the audit trail (analytics/study/sequential.py explains the test).
    """
    if local.score_z is None or local.null_information is None:
        return float("inf"), None
    rows = con.execute(
        """SELECT json_extract(evidence, '$.look') FROM strength_audit
           WHERE rule = ? AND phenotype = ? AND run_id IS NOT NULL AND json_extract(evidence, '$.look') IS NOT NULL
           ORDER BY audit_id""",
        [rule.id, group.label],
    ).fetchall()
    looks = [json.loads(row[0]) for row in rows]
    start = now
    if looks:
        start = datetime.fromisoformat(looks[-1]["year_start"])
        if (now - start).total_seconds() / 86400 >= YEAR_DAYS:
            start, looks = now, []
        looks = [look for look in looks if look["year_start"] == start.isoformat()]
    policy = rule.learning.policy
    state = replay([Look(x["t"], x["information"], x["boundary"]) for x in looks], policy.false_escalation_per_year,
                   policy.spending)  # fmt: skip
    t = ((now - start).total_seconds() / 86400 + 1) / YEAR_DAYS
    boundary = state.look(t, local.null_information)
    return boundary, {"year_start": start.isoformat(), "t": t, "information": local.null_information,
                      "boundary": boundary, "z": local.score_z}  # fmt: skip


def _evidence(group: Group, local: Estimate, posterior: Posterior, decision: Decision, safe_met: bool) -> dict:
    low, high = local.ci
    summary = (
        f"local HR {local.hr:.2f} (95% CI {low:.2f}-{high:.2f}, {local.events} events in {local.n} patients); "
        f"published HR {group.prior.hr:.2f}; combined estimate {posterior.median_hr:.2f} "
        f"(95% {posterior.quantile(0.025):.2f}-{posterior.quantile(0.975):.2f})"
        if local.hr is not None and low is not None
        else f"no usable local estimate; published HR {group.prior.hr:.2f}"
    )
    return {
        "summary": summary,
        "local": {"hr": local.hr, "ci": [low, high], "n": local.n, "events": local.events,
                  "reference_n": local.reference_n, "reference_events": local.reference_events},
        "prior": {"hr": group.prior.hr, "ci": list(group.prior.ci), "source": group.prior.source},
        "posterior": {"hr": posterior.median_hr, "ci": [posterior.quantile(0.025), posterior.quantile(0.975)]},
        "decision": {"action": decision.action, "reason": decision.reason},
        "safe_met": safe_met,
    }  # fmt: skip


def _record_estimates(
    con: duckdb.DuckDBPyConnection, run_id: str, rule: Rule, group: Group, items: tuple[Estimate, ...],
    posterior: Posterior, cell_json: str,
) -> None:  # fmt: skip
    policy = rule.learning.policy
    for item in items:
        low, high = item.ci
        con.execute(
            "INSERT INTO estimate VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, rule.id, group.label, item.contrast, item.n, item.events, item.reference_n,
             item.reference_events, item.person_years, item.hr, low, high, item.log_hr, item.se,
             group.prior.hr, group.prior.se, posterior.median_hr, posterior.quantile(0.025),
             posterior.quantile(0.975), posterior.probability_above(policy.harm_hr),
             posterior.probability_below(policy.safe_hr), cell_json],
        )  # fmt: skip


def _study_rule(
    con: duckdb.DuckDBPyConnection, inputs: Inputs, rule: Rule, run_id: str, snapshot: Snapshot, result: CycleResult
) -> Snapshot:
    """Estimate one rule and decide each group's tier: estimates, cohort counts, proposals and audit are
    recorded; returns ``snapshot`` with the changes ``auto`` mode applies."""
    learning = rule.learning
    assert learning is not None
    now = datetime.now(UTC)
    study = Study(rule, learning)
    cells_of, data = inputs.cells_of, inputs.data
    cell_table = cells_of(study)
    counts, opted_out = cohort_counts(inputs.run, study, inputs.catalog)
    result.opted_out_excluded += opted_out
    if not (counts.target == 1).any():
        # Not an error (a new site, a drug nobody took), but the usual cause of an empty study at a real
        # site is a vocabulary that does not hold the rule's codes, or genotypes not loaded: say so.
        drugs = ", ".join(f"{drug.name} (RxNorm {drug.rxnorm[0]} and {len(drug.rxnorm) - 1} more)"
                          for drug in rule.drugs if drug.rxnorm) or "its drug"  # fmt: skip
        log.warning("%s: no genotyped new user of %s: check that the OMOP vocabulary holds the rule's codes "
                    "(concept_ancestor for products) and that genotype results are loaded", rule.id, drugs)  # fmt: skip
    store_cohort(con, run_id, rule.id, counts, opted_out)
    estimates = {(e.group, e.contrast): e for e in estimate(study, cell_table)}
    errors = _systematic_errors(inputs, study)
    for group in learning.groups:
        mode = "propose" if learning.mode == "auto" and strengths.rolled_back(con, rule, group) else learning.mode
        local = estimates[(group.label, "within-drug")]
        interaction = estimates[(group.label, "interaction")]
        estimable, error = errors[group.label]
        decided = local
        if error is not None and local.log_hr is not None and local.se is not None:
            # Enough negative controls: decide on the calibrated estimate (Schuemie et al. 2014, 2018).
            calibrated_log_hr, calibrated_se = error.calibrate(local.log_hr, local.se)
            decided = replace(local, log_hr=calibrated_log_hr, se=calibrated_se)
            if local.score_z is not None and local.null_information is not None:
                # The score test calibrated the same way, on its own scale: estimate z / sqrt(I), SE 1 / sqrt(I).
                root = math.sqrt(local.null_information)
                shifted, spread = error.calibrate(local.score_z / root, 1 / root)
                decided = replace(decided, score_z=shifted / spread, null_information=1 / spread**2)
        posterior = update(group, learning.policy, decided.log_hr, decided.se)
        tier, floor, ceiling = strengths.current_tier(rule, group, snapshot)
        boundary, look = _sequential_look(con, rule, group, decided, now)
        decision = decide(
            learning.policy, tier=tier, floor=floor, ceiling=ceiling, posterior=posterior, events=local.events,
            reference_events=local.reference_events, log_hr=decided.log_hr, se=decided.se,
            safe_streak=_safe_streak(con, rule.id, group.label), z=decided.score_z, boundary=boundary,
        )  # fmt: skip
        if mode == "off" and decision.changes:
            decision = Decision(tier, tier, "off", f"learning mode is off; would {decision.action}: {decision.reason}")
        safe_met = (
            decision.action != "insufficient data"
            and posterior.probability_below(learning.policy.safe_hr) > learning.policy.deescalate_probability
        )
        evidence = _evidence(group, local, posterior, decision, safe_met)
        if error is not None:
            low, high = decided.ci
            evidence["calibration"] = {"controls": error.controls, "bias_mean": error.mean, "bias_sd": error.sd,
                                       "calibrated": {"hr": decided.hr, "ci": [low, high]}}  # fmt: skip
        if look is not None and decision.action != "insufficient data":
            evidence["look"] = look
        cell_json = cell_table[cell_table.grp.isin([group.label, "reference"])].to_json(orient="records")
        _record_estimates(con, run_id, rule, group, (local, interaction), posterior, cell_json)
        action = strengths.settle_proposal(con, run_id, rule, group, decision, evidence, mode == "propose")
        if mode != learning.mode and decision.changes:
            action += " (auto paused: rolled back by a person)"
        applied = mode == "auto" and decision.changes
        if applied:
            changed = strengths.with_group(snapshot, rule, group, decision.tier_after, evidence["summary"], run_id)
            snapshot = snapshot.model_copy(update={"strengths": tuple(changed)})
        tier_after = decision.tier_after if applied else decision.tier_before
        strengths.audit(
            con, run_id=run_id, rule=rule.id, phenotype=group.label, tier_before=decision.tier_before,
            tier_after=tier_after, action=action, reason=decision.reason,
            approved_by="analytics (auto)" if applied else None, data_snapshot=data, evidence=evidence,
        )  # fmt: skip
        low, high = local.ci
        result.estimates.append({
            "rule": rule.id, "phenotype": group.label, "n": local.n, "events": local.events,
            "hr": local.hr, "ci_low": low, "ci_high": high, "posterior_hr": posterior.median_hr,
            "tier_before": decision.tier_before, "tier_after": tier_after,
            "proposed_tier": decision.tier_after if mode == "propose" and decision.changes else None,
            "action": action, "reason": decision.reason, "interaction_hr": interaction.hr,
            "reference_n": local.reference_n, "reference_events": local.reference_events,
            "negative_controls": {"listed": len(learning.negative_controls), "estimable": estimable,
                                  "calibrated": error is not None},
        })  # fmt: skip
    return snapshot


def run_cycle(library: Library, paths: Paths) -> CycleResult:
    """One full cycle; raises CycleBusy if another is running, re-raises a failure after rollback.

    Whatever happens, how it went is published to ``paths.status`` for the service to report.
    """
    run_id = uuid.uuid4().hex[:12]
    started_at, started = datetime.now(UTC), time.perf_counter()
    try:
        result = _locked_cycle(library, paths, run_id, started)
    except BaseException as exc:
        outcome, message = _outcome(exc)
        publish_status(paths.status, run_id, started_at, started, outcome, message)
        raise
    publish_status(paths.status, run_id, started_at, started, "ok")
    return result


def publish_status(
    path: Path, cycle_id: str | None, started_at: datetime, started: float, outcome: CycleOutcome, message: str = ""
) -> None:
    """Write the status file; a failure to write it is logged, never raised (it must not fail a cycle)."""
    status = CycleStatus(cycle_id=cycle_id, status=outcome, started=started_at, finished=datetime.now(UTC),
                         duration_seconds=round(time.perf_counter() - started, 3), message=message)  # fmt: skip
    try:
        write_status(path, status)
    except OSError as exc:
        log.error("could not write the analytics status file %s: %s", path, exc.strerror or exc)


def _outcome(exc: BaseException) -> tuple[CycleOutcome, str]:
    """The status of a cycle that raised, and a message naming the problem but holding no data values."""
    if isinstance(exc, CycleBusy):
        return "skipped", str(exc)
    if isinstance(exc, NoData):
        return "no-data", str(exc)
    if isinstance(exc, BadData | SourceError):
        return "failed", str(exc)
    return "failed", f"{type(exc).__name__}; its message is in analysis_run, the traceback in the analytics log"


def _locked_cycle(library: Library, paths: Paths, run_id: str, started: float) -> CycleResult:
    with exclusive(paths.lock):
        result = CycleResult(run_id, "running")
        source: Source | None = None
        con = connect(paths.database)
        try:
            # Holding the lock, any run still marked running was cut off (killed, power lost).
            con.execute("UPDATE analysis_run SET status = 'interrupted' WHERE status = 'running'")
            missing = [table for table in REQUIRED if not table_exists(con, table)]
            if missing and paths.omop is None:
                raise NoData(
                    f"{paths.database} has no {', '.join(missing)} table yet: load data first "
                    "(pgx-loop load-omop, or pgx-loop simulate for synthetic data)"
                )
            source = open_source(paths.omop) if paths.omop else None  # a bad URL fails before any work
            con.execute(
                "INSERT INTO analysis_run (run_id, started_at, status, library_version) "
                "VALUES (?, now(), 'running', ?)",
                [run_id, library.version],
            )
            con.execute("BEGIN")
            try:
                result.events_ingested = ingest(con, paths.event_dirs)
                inputs = _in_store(con, paths, library) if source is None else _in_source(con, source, library)
                data, products = inputs.data, inputs.products
                store_coverage(con, run_id, inputs.run(coverage_query(inputs.catalog)))
                if source is not None:  # the store's pgx_result is not what this cycle studied
                    store_checks(con, run_id, result_checks(inputs.run, inputs.catalog, library))
                published = working = strengths.latest(con)
                for rule in library.rules:
                    if rule.learning is not None:
                        working = _study_rule(con, inputs, rule, run_id, working, result)
                if working.strengths != published.strengths:
                    result.snapshot_version = strengths.publish(con, list(working.strengths), run_id).version
                else:
                    result.snapshot_version = published.version
                con.execute(
                    "UPDATE analysis_run SET finished_at = now(), status = 'ok', data_snapshot = ?, "
                    "events_ingested = ?, opted_out_excluded = ? WHERE run_id = ?",
                    [json.dumps(data), result.events_ingested, result.opted_out_excluded, run_id],
                )
                con.execute("COMMIT")
                if source is not None:
                    result.rows_from_source = source.rows_out
            except BaseException as exc:
                con.execute("ROLLBACK")
                con.execute(
                    "UPDATE analysis_run SET finished_at = now(), status = 'failed', message = ? WHERE run_id = ?",
                    [f"{type(exc).__name__}: {exc}"[:2000], run_id],
                )
                raise
            strengths.write_file(con, paths.snapshot)
            if products is not None:
                result.products = len(products.products)
                if products.products:
                    publish_products(products, paths.products)
                else:  # a vocabulary without RxNorm ingredients: keep what was published before
                    log.info("the OMOP vocabulary holds no RxNorm product of the covered drugs; none published")
            result.status = "ok"
            result.seconds = time.perf_counter() - started
            log.info("analytics cycle %s done in %.1f s", run_id, result.seconds)
            return result
        finally:
            con.close()
            if source is not None:
                source.close()


def _in_store(con: duckdb.DuckDBPyConnection, paths: Paths, library: Library) -> Inputs:
    """The data snapshot, product index and cells when OMOP is in the analytics store."""
    problems = type_problems(con)
    if problems:
        raise BadData(f"{paths.database}: " + "; ".join(problems))
    extract_measurements(con, set(library.genes))
    refresh_phenotypes(con, library)
    data = data_snapshot(con)
    # Read inside the transaction, published after commit with the strengths.
    products = build_index(con, library) if has_vocabulary(con) else None
    return Inputs(data, products, store_cells(con), lambda sql: con.execute(sql).df(), store_catalog(con))


def _in_source(con: duckdb.DuckDBPyConnection, source: Source, library: Library) -> Inputs:
    """The same when OMOP stays in the site's engine: counts, vocabulary rows and cells are all that come out."""
    opt_outs = [int(row[0]) for row in con.execute("SELECT person_id FROM research_opt_out").fetchall()]
    found = catalog(source, library, opt_outs)
    data = {"source": source.shown, **row_counts(source, found.tables)}
    products = None
    if {"concept", "concept_ancestor"} <= found.tables:
        rows = source.query(products_sql(covered_ingredients(library)))
        products = index_from_rows(rows.itertuples(index=False))
    return Inputs(data, products, source_cells(source, found), source.query, found)


def status(database: Path) -> dict:
    """Counts for the demo and the readiness check."""
    if not database.exists():
        return {}
    con = duckdb.connect(str(database), read_only=True)
    try:
        return {table: count(con, table) for table in ("person", "pgx_result", "cds_event", "estimate")}
    finally:
        con.close()
