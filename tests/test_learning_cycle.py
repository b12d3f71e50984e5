"""The analytics cycle end to end on a real DuckDB file: publish, propose, approve, roll back, fail safely."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from analytics.cycle import BadData, CycleBusy, NoData, run_cycle
from analytics.data.store import connect
from analytics.settings import Paths
from engine.decision.strengths import read_snapshot
from engine.rulebook.library import Library
from pgx_loop.cli import main
from tests.learning_data import CLOPIDOGREL, SIMVASTATIN, paths_in, query, simulated, truth
from tests.test_replica_events import card_event, write_segment

ESTIMATE_KEYS = {"rule", "phenotype", "n", "events", "hr", "ci_low", "ci_high", "posterior_hr", "tier_before",
                 "tier_after", "action"}  # fmt: skip


@pytest.fixture(scope="module")
def source_db(library: Library, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40,000 persons; clopidogrel intermediate metabolizers truly at HR 2.5 (auto mode), simvastatin at
    the literature's 4.5 (propose mode)."""
    path = tmp_path_factory.mktemp("learning") / "source.duckdb"
    effects = truth(clopidogrel={"Intermediate Metabolizer": 2.5, "Poor Metabolizer": 2.5}, rate=0.3)
    simulated(library, 40_000, seed=2, effects=effects, path=path).close()
    return path


@pytest.fixture
def paths(source_db: Path, tmp_path: Path) -> Paths:
    return paths_in(tmp_path, source_db)


def _env(paths: Paths) -> dict[str, str]:
    return {
        "PGX_LOOP_DB": str(paths.database),
        "PGX_LOOP_EVENT_LOG_DIR": str(paths.events),
        "PGX_LOOP_STRENGTHS_FILE": str(paths.snapshot),
        "PGX_LOOP_VAR_DIR": str(paths.database.parent / "var"),
    }


def cli(paths: Paths, *args: str) -> subprocess.CompletedProcess:
    """``pgx-loop ARGS --db`` on ``paths``, as a separate process (what it prints, and nothing else)."""
    env = {**os.environ, **_env(paths)}
    return subprocess.run([sys.executable, "-m", "pgx_loop.cli", *args], capture_output=True, text=True, env=env)


def strength_cli(paths: Paths, *args: str) -> Result:
    """``pgx-loop strength ARGS`` on ``paths`` in this process: these commands set up no logging, so nothing
    outlives the call, and a pharmacist's sequence of them costs no interpreter start-ups."""
    return CliRunner().invoke(main, ["strength", *args], env=_env(paths))


def test_analyze_prints_one_json_object_with_every_estimate(paths: Paths):
    done = cli(paths, "analyze")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # stdout is the JSON object and nothing else
    assert "analytics cycle" in done.stderr  # progress goes to stderr
    groups = {(e["rule"], e["phenotype"]) for e in result["estimates"]}
    assert groups == {
        (CLOPIDOGREL, "Intermediate Metabolizer"), (CLOPIDOGREL, "Poor Metabolizer"),
        (SIMVASTATIN, "Decreased Function"), (SIMVASTATIN, "Poor Function"),
    }  # fmt: skip
    for entry in result["estimates"]:
        assert set(entry) >= ESTIMATE_KEYS
        if entry["hr"] is not None:
            assert entry["ci_low"] < entry["hr"] < entry["ci_high"]
            assert entry["n"] > 0 and 0 < entry["events"] <= entry["n"]


def test_auto_mode_publishes_an_escalation_with_its_audit(library: Library, paths: Paths):
    result = run_cycle(library, paths)
    escalated = [e for e in result.estimates if e["action"] == "escalate"]
    assert [(e["rule"], e["phenotype"], e["tier_before"], e["tier_after"]) for e in escalated] == [
        (CLOPIDOGREL, "Intermediate Metabolizer", "warning", "critical")
    ]
    snapshot = read_snapshot(paths.snapshot)
    assert snapshot.version == result.snapshot_version == 1
    assert {(s.rule, s.phenotype, s.tier) for s in snapshot.strengths} == {
        (CLOPIDOGREL, "Intermediate Metabolizer", "critical"),
        (CLOPIDOGREL, "Likely Intermediate Metabolizer", "critical"),
    }
    assert "local HR" in snapshot.strengths[0].evidence and "published HR 1.55" in snapshot.strengths[0].evidence
    ((run_id, data, evidence, approved_by),) = query(
        paths,
        "SELECT run_id, data_snapshot, evidence, approved_by FROM strength_audit WHERE action = 'escalate'",
    )
    assert run_id == result.run_id and approved_by == "analytics (auto)"
    data, evidence = json.loads(data), json.loads(evidence)
    assert data["person"]["rows"] == 40_000 and len(data["person"]["hash"]) == 16
    assert {"local", "prior", "posterior", "decision"} <= set(evidence)
    assert evidence["prior"]["hr"] == 1.55 and evidence["local"]["events"] > 0
    cells = query(
        paths,
        "SELECT cells FROM estimate WHERE run_id = ? AND rule = ? AND phenotype = 'Intermediate Metabolizer' "
        "AND contrast = 'within-drug'",
        [run_id, CLOPIDOGREL],
    )[0][0]
    assert sum(c["events"] for c in json.loads(cells) if c["target"] == 1) >= evidence["local"]["events"]


def test_a_second_cycle_on_the_same_data_changes_nothing(library: Library, paths: Paths):
    run_cycle(library, paths)
    again = run_cycle(library, paths)
    assert again.snapshot_version == 1
    pending = query(paths, "SELECT count(*) FROM strength_proposal WHERE status = 'pending'")[0][0]
    assert pending == 1  # the same proposal stays pending; it is not superseded by a duplicate
    assert any("still pending as #1" in e["action"] for e in again.estimates)


def test_propose_mode_waits_for_approval_then_rollback_restores_and_pauses_auto(library: Library, paths: Paths):
    first = run_cycle(library, paths)
    proposed = [e for e in first.estimates if e["action"].startswith("propose")]
    assert [(e["rule"], e["phenotype"], e["proposed_tier"]) for e in proposed] == [
        (SIMVASTATIN, "Decreased Function", "critical")
    ]
    assert proposed[0]["tier_after"] == "warning"  # nothing applied yet
    shown = strength_cli(paths, "show")
    assert "#1 slco1b1-simvastatin Decreased Function: warning -> critical" in shown.stdout

    approved = strength_cli(paths, "approve", "1", "--by", "pharmacist A")
    assert approved.exit_code == 0, approved.output
    assert "published snapshot version 2" in approved.stdout
    assert (SIMVASTATIN, "Decreased Function", "critical") in {
        (s.rule, s.phenotype, s.tier) for s in read_snapshot(paths.snapshot).strengths
    }
    again = strength_cli(paths, "approve", "1", "--by", "pharmacist A")
    assert again.exit_code != 0 and "proposal 1 is approved, not pending" in again.stderr

    rolled = strength_cli(paths, "rollback", "--to", "0", "--by", "pharmacist B")
    assert rolled.exit_code == 0, rolled.output
    history = strength_cli(paths, "history").stdout
    assert "[rollback by pharmacist B -> snapshot v3]" in history
    assert "[approved by pharmacist A -> snapshot v2]" in history
    assert read_snapshot(paths.snapshot).strengths == ()

    # The clopidogrel escalation was rolled back by a person: the loop now only proposes it.
    after = run_cycle(library, paths)
    clopidogrel = next(e for e in after.estimates if e["phenotype"] == "Intermediate Metabolizer")
    assert clopidogrel["tier_after"] == "warning" and clopidogrel["proposed_tier"] == "critical"
    assert "auto paused: rolled back by a person" in clopidogrel["action"]


def _table_state(paths: Paths) -> dict:
    tables = ("cds_event", "event_ingest", "estimate", "strength_audit", "strength_snapshot", "strength_proposal",
              "cohort_count", "cohort_opt_out", "coverage_count")  # fmt: skip
    return {table: query(paths, f"SELECT count(*) FROM {table}")[0][0] for table in tables} | {
        "offsets": query(paths, "SELECT segment, offset_bytes FROM event_ingest ORDER BY ALL")
    }


def test_a_cycle_that_fails_on_bad_data_changes_nothing(library: Library, paths: Paths):
    run_cycle(library, paths)
    published = paths.snapshot.read_bytes()
    paths.events.mkdir(parents=True, exist_ok=True)
    (paths.events / "events-host-1-1.jsonl").write_text(
        json.dumps({"event_id": "e-1", "type": "card", "time": "2026-01-01T00:00:00+00:00", "rule": CLOPIDOGREL}) + "\n"
    )
    before = _table_state(paths)
    con = connect(paths.database)
    con.execute("ALTER TABLE person ALTER year_of_birth TYPE VARCHAR")
    con.execute("UPDATE person SET year_of_birth = 'unknown' WHERE person_id % 7 = 0")
    con.close()

    with pytest.raises(BadData, match=r"person\.year_of_birth must hold whole numbers, not VARCHAR"):
        run_cycle(library, paths)  # found after ingestion began: the ingestion is rolled back too
    assert _table_state(paths) == before  # the event was not ingested, no offset moved, nothing recorded
    assert paths.snapshot.read_bytes() == published
    status, message = query(paths, "SELECT status, message FROM analysis_run ORDER BY started_at DESC LIMIT 1")[0]
    assert status == "failed" and "person.year_of_birth" in message


def test_a_cycle_cut_off_mid_run_is_marked_interrupted_by_the_next(library: Library, paths: Paths):
    con = connect(paths.database)
    con.execute("INSERT INTO analysis_run (run_id, started_at, status) VALUES ('killed', now(), 'running')")
    con.close()
    run_cycle(library, paths)
    assert query(paths, "SELECT status FROM analysis_run WHERE run_id = 'killed'") == [("interrupted",)]


def test_two_cycles_never_run_at_once(library: Library, paths: Paths):
    hold = (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('held', flush=True); time.sleep(600)"  # until killed below: a slow machine must not see it let go
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(paths.lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CycleBusy):
            run_cycle(library, paths)
        busy = cli(paths, "analyze")
        assert busy.returncode == 1 and "another analytics cycle is running" in busy.stderr
    finally:
        holder.kill()
        holder.wait()
    assert run_cycle(library, paths).status == "ok"


def test_research_opt_outs_are_left_out_and_counted(library: Library, paths: Paths, tmp_path: Path):
    opted_out = query(paths, "SELECT count(*) FROM research_opt_out")[0][0]
    assert opted_out > 0
    with_opt_outs = run_cycle(library, paths)
    assert with_opt_outs.opted_out_excluded > 0
    con = connect(paths.database)
    con.execute("DELETE FROM research_opt_out")
    con.close()
    without = run_cycle(library, paths)
    assert without.opted_out_excluded == 0
    n = {(e["rule"], e["phenotype"]): e["n"] + e["reference_n"] for e in with_opt_outs.estimates}
    n_all = {(e["rule"], e["phenotype"]): e["n"] + e["reference_n"] for e in without.estimates}
    assert all(n_all[key] >= n[key] for key in n) and sum(n_all.values()) > sum(n.values())
    recorded = query(paths, "SELECT opted_out_excluded FROM analysis_run WHERE run_id = ?", [with_opt_outs.run_id])
    assert recorded == [(with_opt_outs.opted_out_excluded,)]


def test_a_study_that_finds_no_user_of_its_drug_says_why_it_may_be(library: Library, paths: Paths, caplog):
    """A real site's vocabulary may lack a rule's codes (OHDSI's Synthea27Nj lacks simvastatin's
    ingredient): the study is then empty, and the log names the drug and what to check."""
    with caplog.at_level(logging.WARNING, logger="analytics.cycle"):
        run_cycle(library, paths)
    assert "no genotyped new user" not in caplog.text
    con = connect(paths.database)
    con.execute("DELETE FROM drug_exposure WHERE drug_concept_id IN (SELECT descendant_concept_id FROM "
                "concept_ancestor a JOIN concept c ON c.concept_id = a.ancestor_concept_id "
                "WHERE c.vocabulary_id = 'RxNorm' AND c.concept_code = '36567')")  # simvastatin  # fmt: skip
    con.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="analytics.cycle"):
        run_cycle(library, paths)
    [line] = [r.getMessage() for r in caplog.records if "no genotyped new user" in r.getMessage()]
    assert line.startswith(f"{SIMVASTATIN}: no genotyped new user of simvastatin (RxNorm 36567")


def test_a_database_without_omop_data_is_refused_clearly(library: Library, tmp_path: Path):
    paths = Paths(tmp_path / "empty.duckdb", tmp_path / "events", tmp_path / "strengths.json")
    with pytest.raises(NoData, match="has no person, observation_period, drug_exposure"):
        run_cycle(library, paths)
    assert not paths.snapshot.exists()


def test_analyze_ingests_every_replicas_event_log_named_by_a_glob(paths: Paths, tmp_path: Path):
    for replica in ("a", "b"):
        events = tmp_path / f"replica-{replica}" / "events"
        events.mkdir(parents=True)
        write_segment(events, "events-000001.jsonl", [card_event(f"{replica}-card")])  # the same name in both
    # A directory named on the command line is taken whole, commas and all (once split into two that don't exist).
    odd = tmp_path / "site 3, ward b" / "events"
    odd.mkdir(parents=True)
    write_segment(odd, "events-000001.jsonl", [card_event("ward-b-card")])
    done = cli(paths, "analyze", "--events", str(tmp_path / "replica-*" / "events"), "--events", str(odd))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["events_ingested"] == 3
