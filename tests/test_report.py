"""Outcome reports rendered from simulated data: what they show, that it matches the database, and that
small counts never show, in the HTML, the CSVs or the summary."""

from __future__ import annotations

import csv
import json
import logging
import re
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from analytics.cycle import run_cycle
from analytics.data.store import connect
from analytics.report.render import entries, site_identifiers, write_report
from analytics.report.view import VALIDITY, methods_tables
from analytics.scheduler import scheduled_cycle
from analytics.settings import AnalyticsSettings, Paths
from analytics.study import strengths
from engine.rulebook.library import Library
from pgx_loop.cli import main
from tests.learning_data import CLOPIDOGREL, paths_in, query, simulated, truth

KEY = b"k" * 32  # the key tests.learning_data pseudonymises the simulated events with
SMALL_OK = {"pending"}  # tables whose integers are not patient counts (proposal numbers)


@pytest.fixture(scope="module")
def loop(library: Library, tmp_path_factory: pytest.TempPathFactory) -> tuple[Paths, Path, list[Path]]:
    """Two cycles on 30,000 simulated persons (clopidogrel intermediate metabolizers truly at HR 2.5, so the
    first cycle escalates), with a report after each."""
    directory = tmp_path_factory.mktemp("report")
    source = directory / "source.duckdb"
    effects = truth(clopidogrel={"Intermediate Metabolizer": 2.5, "Poor Metabolizer": 2.5}, rate=0.3)
    simulated(library, 30_000, seed=2, effects=effects, path=source).close()
    paths = paths_in(directory / "loop", source)
    out = directory / "reports"
    folders = []
    for _ in range(2):
        run_cycle(library, paths)
        folders.append(
            write_report(paths.database, library, out, min_cell=10, identifiers=site_identifiers(key(paths)))
        )
    return paths, out, folders


def key(paths: Paths) -> Path:
    path = paths.database.parent / "site.key"
    path.write_bytes(KEY)
    return path


class Tables(HTMLParser):
    """The rows of every <table> in a page, as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._in_caption = False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def csv_tables(folder: Path) -> dict[str, list[list[str]]]:
    return {path.stem: list(csv.reader(path.open(encoding="utf-8"))) for path in sorted(folder.glob("*.csv"))}


def html_rows(folder: Path) -> list[list[str]]:
    parser = Tables()
    parser.feed((folder / "report.html").read_text(encoding="utf-8"))
    return parser.rows


def by_row(table: list[list[str]], label: str, column: str) -> str:
    index = table[0].index(column)
    return next(row[index] for row in table[1:] if row[0] == label)


NUMERIC = ("-estimates", "-trend", "methods-validity", "methods-looks")  # CSVs with their own numeric columns


def plain(value: str) -> str:
    """A shown value as the CSV holds it: numbers without separators, percentages as numbers, hidden as empty."""
    if value in ("*", "–"):
        return ""
    if re.fullmatch(r"-?[\d,]+", value):
        return value.replace(",", "")
    if re.fullmatch(r"-?\d+(\.\d+)?%", value):
        return str(float(value[:-1]))
    return value


def test_the_report_is_one_self_contained_page_with_its_plots(loop):
    _, _, folders = loop
    html = (folders[-1] / "report.html").read_text(encoding="utf-8")
    for heading in ("What changed", "clopidogrel", "simvastatin", "Cohort", "Estimate", "Strength", "Alerts",
                    "Equity", "Data quality"):  # fmt: skip
        assert heading in html
    plots = re.findall(r'<svg [^>]*role="img"[^>]*aria-label="[^"]+"[^>]*>\s*<title>[^<]+</title>', html)
    assert len(plots) == 2  # a forest plot per rule; no trend chart before the third cycle
    assert "The trend chart appears from the third cycle (2 so far)" in html
    assert "Methods: how far to trust the loop" in html and "95% CI coverage" in html
    assert "A year of nightly looks" in html and "Lan &amp; DeMets" in html
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing fetched from anywhere
    assert "url(" not in html and "@import" not in html
    assert "@media print" in html


def test_the_summary_says_what_changed_and_why(loop):
    _, _, folders = loop
    first = json.loads((folders[0] / "meta.json").read_text())["summary"]
    escalation = [line for line in first if "Intermediate Metabolizer: warning → critical (escalate" in line]
    assert escalation and "because P(HR > 1.2)" in escalation[0]
    second = json.loads((folders[1] / "meta.json").read_text())["summary"]
    assert not any("(escalate by" in line for line in second)  # nothing new changed at the second cycle
    assert any("No tier changed" in line for line in second)
    assert any(line.startswith("clopidogrel, Intermediate Metabolizer: this site's HR") for line in second)


def test_csv_exports_are_the_html_tables_and_hide_small_counts(loop):
    _, _, folders = loop
    tables = csv_tables(folders[-1])
    assert {f"{CLOPIDOGREL}-cohort-users", f"{CLOPIDOGREL}-estimates", f"{CLOPIDOGREL}-tier-history",
            f"{CLOPIDOGREL}-alerts", f"{CLOPIDOGREL}-order-changed", f"{CLOPIDOGREL}-equity-alerts",
            "equity-result-coverage", "quality-results"} <= set(tables)  # fmt: skip
    shown = {tuple(plain(v) for v in row[:1]) + tuple(plain(v) for v in row[1:]) for row in html_rows(folders[-1])}
    hidden = 0
    for name, rows in tables.items():
        for row in rows:
            if not name.endswith(NUMERIC):
                assert tuple(row) in shown, (name, row)
            for value in row[1:]:
                if name.split("-", 2)[-1] not in SMALL_OK and re.fullmatch(r"\d+", value):
                    assert not 1 <= int(value) <= 10 or name.endswith(NUMERIC), (name, row)
                hidden += value == ""
    assert hidden > 0  # the simulated data do have small cells: they are there, suppressed
    summary = json.loads((folders[-1] / "meta.json").read_text())["summary"]
    for line in summary:
        for number in re.findall(r"(?<![\d.#])\d+(?![\d.%])", line.split("HR")[0]):
            assert not 1 <= int(number) <= 10, line


def test_without_suppression_the_counts_are_the_cycles_own(library: Library, loop, tmp_path: Path):
    paths, _, _ = loop
    folder = write_report(paths.database, library, tmp_path, min_cell=0, identifiers=site_identifiers(key(paths)))
    tables = csv_tables(folder)
    (n, events), = query(paths, """SELECT e.n, e.events FROM estimate e JOIN analysis_run r USING (run_id)
        WHERE e.rule = ? AND e.phenotype = 'Intermediate Metabolizer' AND e.contrast = 'within-drug'
        ORDER BY r.started_at DESC LIMIT 1""", [CLOPIDOGREL])  # fmt: skip
    assert by_row(tables[f"{CLOPIDOGREL}-cohort-users"], "Intermediate Metabolizer", "clopidogrel") == str(n)
    assert by_row(tables[f"{CLOPIDOGREL}-cohort-events"], "Intermediate Metabolizer", "clopidogrel") == str(events)
    ((cards,),) = query(paths, "SELECT count(*) FROM cds_event WHERE type = 'card' AND rule = ?", [CLOPIDOGREL])
    alerts = tables[f"{CLOPIDOGREL}-alerts"]
    assert by_row(alerts, "Total", "cards shown") == str(cards)
    changed = tables[f"{CLOPIDOGREL}-order-changed"]
    switched, kept = (int(by_row(changed, "Total", c)) for c in ("changed", "not changed"))
    accepted, silent = (int(by_row(alerts, "Total", c)) for c in ("accepted", "no feedback"))
    assert switched + kept == cards
    # In the simulator a clinician accepts exactly when the patient is switched to a comparator.
    assert accepted <= switched <= accepted + silent
    by_population = tables[f"{CLOPIDOGREL}-equity-alerts"]
    assert by_row(by_population, "Total", "cards shown") == str(cards)
    assert "Unknown or not reported" not in [row[0] for row in by_population]  # every card linked to its patient
    coverage = tables["equity-result-coverage"]
    ((persons,),) = query(paths, "SELECT count(*) FROM person")
    assert by_row(coverage, "Total", "persons") == str(persons)


def test_without_the_site_key_cards_are_not_linked_and_the_report_says_so(library: Library, loop, tmp_path: Path):
    paths, _, _ = loop
    folder = write_report(paths.database, library, tmp_path, min_cell=10)
    assert not list(folder.glob("*-order-changed.csv")) and not list(folder.glob("*-equity-alerts.csv"))
    assert "pseudonym key to link cards to patients" in (folder / "report.html").read_text()


def test_the_index_lists_every_report_newest_first(loop):
    _, out, folders = loop
    listed = [entry.stamp for entry in entries(out)]
    assert listed == sorted((f.name for f in folders), reverse=True)
    index = (out / "index.html").read_text()
    assert all(f'href="{stamp}/"' in index for stamp in listed)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_a_report_that_cannot_be_written_does_not_fail_the_cycle(loop, tmp_path: Path, caplog):
    paths, _, _ = loop
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the reports folder should be")
    copy = paths_in(tmp_path / "loop", paths.database)
    settings = AnalyticsSettings(db=copy.database, event_log_dir=copy.events, strengths_file=copy.snapshot,
                                 var_dir=tmp_path / "var", reports_dir=blocked, analytics_interval_hours=0)  # fmt: skip
    with caplog.at_level(logging.ERROR):
        result = scheduled_cycle(settings)
    assert result is not None and result.status == "ok"
    assert copy.snapshot.exists()
    assert "report for this cycle could not be written" in caplog.text
    assert query(copy, "SELECT count(*) FROM analysis_run WHERE run_id = ? AND status = 'ok'", [result.run_id])[0][0]


def test_the_report_command_writes_a_report_with_the_configured_threshold(loop, tmp_path: Path):
    paths, _, _ = loop
    runner = CliRunner(env={"PGX_LOOP_REPORT_MIN_CELL": "3", "PGX_LOOP_VAR_DIR": str(tmp_path / "var")})
    command = ["report", "--db", str(paths.database), "--out", str(tmp_path)]
    done = runner.invoke(main, command)
    assert done.exit_code == 0, done.output
    page = Path(done.output.strip())
    assert page.name == "report.html" and page.is_file()
    assert json.loads((page.parent / "meta.json").read_text())["min_cell"] == 3
    done = runner.invoke(main, [*command, "--min-cell", "20"])
    assert json.loads((Path(done.output.strip()).parent / "meta.json").read_text())["min_cell"] == 20
    missing = runner.invoke(main, [*command[:2], str(tmp_path / "none.duckdb")])
    assert missing.exit_code != 0 and "no such database" in missing.output
    duckdb.connect(str(tmp_path / "empty.duckdb")).close()
    empty = runner.invoke(main, [*command[:2], str(tmp_path / "empty.duckdb")])
    assert empty.exit_code != 0 and "no person, pgx_result, analysis_run table" in empty.output


def test_analyze_writes_the_cycles_report(loop, tmp_path: Path):
    paths, _, _ = loop
    copy = paths_in(tmp_path / "loop", paths.database)
    env = {"PGX_LOOP_DB": str(copy.database), "PGX_LOOP_EVENT_LOG_DIR": str(copy.events),
           "PGX_LOOP_STRENGTHS_FILE": str(copy.snapshot), "PGX_LOOP_VAR_DIR": str(tmp_path / "var")}  # fmt: skip
    done = CliRunner(env=env).invoke(main, ["analyze"])
    assert done.exit_code == 0, done.output
    run_id = json.loads(done.stdout)["run_id"]
    (folder,) = [entry.stamp for entry in entries(tmp_path / "var" / "reports")]
    assert json.loads((tmp_path / "var" / "reports" / folder / "meta.json").read_text())["run_id"] == run_id


def test_an_approval_since_the_last_cycle_is_in_the_summary(library: Library, loop, tmp_path: Path):
    paths, _, _ = loop
    copy = paths_in(tmp_path / "loop", paths.database)
    con = connect(copy.database)
    try:
        (proposal,) = con.execute("SELECT proposal_id FROM strength_proposal WHERE status = 'pending'").fetchall()
        strengths.approve(con, proposal[0], "J. Smith, PharmD", {rule.id: rule for rule in library.rules})
    finally:
        con.close()
    folder = write_report(copy.database, library, tmp_path / "reports", min_cell=10)
    summary = json.loads((folder / "meta.json").read_text())["summary"]
    assert any("Decreased Function: warning → critical (approved by J. Smith, PharmD)" in line for line in summary)
    assert not any("Waiting for a pharmacist's approval" in line for line in summary)


def test_data_quality_counts_unknown_alleles_and_disagreeing_results(library: Library, loop, tmp_path: Path):
    paths, _, _ = loop
    copy = paths_in(tmp_path / "loop", paths.database)
    con = connect(copy.database)
    try:
        con.execute("DELETE FROM pgx_result WHERE person_id IN (1, 2, 3, 4)")
        con.execute("""INSERT INTO pgx_result VALUES
            (1, 'CYP2C19', '*1/*99', NULL, 'test'), (2, 'CYP2C19', '*1/*1', NULL, 'test'),
            (2, 'CYP2C19', '*2/*2', NULL, 'test'), (3, 'CYP2C19', 'not a result', NULL, 'test'),
            (4, 'CYP2C19', '*1/*1', NULL, 'test'), (4, 'CYP2C19', '*1/*1', '2020-01-01', 'test')""")
        (without,) = con.execute("SELECT count(*) FROM person WHERE person_id NOT IN (SELECT person_id FROM pgx_result)"
                                 ).fetchone()  # fmt: skip
    finally:
        con.close()
    tables = csv_tables(write_report(copy.database, library, tmp_path / "reports", min_cell=0))
    problems = dict(tables["quality-problems"][1:])
    assert problems["Results naming an allele the gene definitions do not know"] == "1"
    assert problems["Results that are not a diplotype"] == "1"
    assert problems["Persons with disagreeing results for one gene (different diplotypes)"] == "1"
    assert problems["... of which the diplotypes give different phenotypes"] == "1"
    assert by_row(tables["quality-results"], "Total", "without a result") == str(without)
    hidden = csv_tables(write_report(copy.database, library, tmp_path / "hidden", min_cell=10))
    assert dict(hidden["quality-problems"][1:])["Results that are not a diplotype"] == ""


def test_feedback_is_counted_only_for_issued_cards_and_offered_reasons(library: Library, loop, tmp_path: Path):
    """Formula injection through override reasons (=HYPERLINK, =cmd|) and feedback for cards never shown."""
    paths, _, _ = loop
    copy = paths_in(tmp_path / "loop", paths.database)
    con = connect(copy.database)
    try:
        ((card,),) = con.execute(
            "SELECT card FROM cds_event WHERE type = 'card' AND rule = ? AND NOT shadow AND card NOT IN "
            "(SELECT card FROM cds_event WHERE type = 'feedback') LIMIT 1",
            [CLOPIDOGREL],
        ).fetchall()
        con.execute(
            """INSERT INTO cds_event (event_id, type, time, service, card, outcome, override_reason, ingested_at)
               VALUES ('f1', 'feedback', now(), 'pgx-order-select', ?, 'overridden', '=cmd|'' /C calc''!A0', now()),
                      ('f2', 'feedback', now(), 'pgx-order-select', 'never-issued', 'overridden', 'stable-on-drug',
                       now()),
                      ('f3', 'feedback', now(), 'pgx-order-select', 'never-issued', 'accepted', NULL, now())""",
            [card],
        )
    finally:
        con.close()
    before = csv_tables(write_report(paths.database, library, tmp_path / "before", min_cell=0))
    after = csv_tables(write_report(copy.database, library, tmp_path / "after", min_cell=0))

    reasons = dict(after[f"{CLOPIDOGREL}-override-reasons"][1:])
    assert reasons["other"] == "1" and not any("cmd" in reason for reason in reasons)
    alerts_before, alerts_after = before[f"{CLOPIDOGREL}-alerts"], after[f"{CLOPIDOGREL}-alerts"]
    for column in ("cards shown", "accepted"):  # the stray feedback counts nowhere
        assert by_row(alerts_after, "Total", column) == by_row(alerts_before, "Total", column)
    overridden = int(by_row(alerts_before, "Total", "overridden")) + 1  # f1 names a shown card
    assert by_row(alerts_after, "Total", "overridden") == str(overridden)
    problems = dict(after["quality-problems"][1:])
    assert problems["Feedback for unknown cards (not counted anywhere in this report)"] == "2"


def test_no_csv_cell_starts_a_spreadsheet_formula_and_numbers_stay_numbers(tmp_path: Path):
    from analytics.report.render import write_csv
    from analytics.report.view import Table

    hostile = ['=HYPERLINK("http://evil.test")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx"]
    table = Table("t", "A table", ["=label", "value"], [[text, -1.25] for text in hostile] + [["plain", 3]])

    write_csv(table, tmp_path / "t.csv")

    with (tmp_path / "t.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows == [["'=label", "value"], *(["'" + text, "-1.25"] for text in hostile), ["plain", "3"]]


def test_the_estimates_csv_is_numeric_with_the_interaction_beside_the_within_drug_hr(loop):
    paths, _, folders = loop
    (estimates,) = [rows for name, rows in csv_tables(folders[-1]).items() if name == f"{CLOPIDOGREL}-estimates"]
    header, rows = estimates[0], {row[0]: dict(zip(estimates[0], row, strict=True)) for row in estimates[1:]}
    assert {"hr", "ci_low", "ci_high", "interaction_hr", "events", "p_harm"} <= set(header)
    ((hr, interaction),) = query(paths, """SELECT w.hr, i.hr FROM estimate w
        JOIN estimate i USING (run_id, rule, phenotype) JOIN analysis_run r USING (run_id)
        WHERE w.rule = ? AND w.phenotype = 'Intermediate Metabolizer' AND w.contrast = 'within-drug'
        AND i.contrast = 'interaction' ORDER BY r.started_at DESC LIMIT 1""",
        [CLOPIDOGREL])  # fmt: skip
    im = rows["Intermediate Metabolizer"]
    assert float(im["hr"]) == pytest.approx(hr, abs=1e-4) and float(im["interaction_hr"]) == pytest.approx(
        interaction, abs=1e-4
    )
    assert float(im["ci_low"]) < float(im["hr"]) < float(im["ci_high"])
    html = (folders[-1] / "report.html").read_text(encoding="utf-8")
    assert "vs comparators: ratio of HRs" in html and "the one tier decisions use" in html


def test_approving_a_proposal_writes_a_fresh_report(library: Library, loop, tmp_path: Path):
    paths, _, _ = loop
    copy = paths_in(tmp_path / "loop", paths.database)
    ((proposal,),) = query(copy, "SELECT proposal_id FROM strength_proposal WHERE status = 'pending'")
    env = {"PGX_LOOP_VAR_DIR": str(tmp_path / "var"), "PGX_LOOP_DB": str(copy.database),
           "PGX_LOOP_STRENGTHS_FILE": str(copy.snapshot)}  # fmt: skip
    done = CliRunner().invoke(main, ["strength", "approve", str(proposal), "--by", "J. Smith"], env=env)
    assert done.exit_code == 0, done.output
    (latest, *_) = entries(tmp_path / "var" / "reports")
    summary = json.loads((tmp_path / "var" / "reports" / latest.stamp / "meta.json").read_text())["summary"]
    assert any("approved by J. Smith" in line for line in summary)
    assert not any("Waiting for a pharmacist's approval" in line for line in summary)


def test_the_methods_section_shows_the_committed_studys_year_of_looks_and_its_scenarios():
    """analytics/report/validity.json, as bench/learning_validity.py --write left it, is what the analyst reads."""
    study = json.loads(VALIDITY.read_text())
    looks, scenarios = methods_tables(VALIDITY)
    groups = study["sequential"]["groups"]
    assert len(looks.rows) == sum(len(by_hr) for by_hr in groups.values())
    _, data = looks.csv()
    for row in data:
        figures = groups[row[0]][f"{row[1]:g}"]
        assert row[3] == figures["escalated"] and [row[4], row[5]] == figures["ci95"]
        assert row[2] == figures["seeds"] >= 20
        # both intervals: the draws as clusters, and counting only the independent draws (never narrower)
        assert [row[11], row[12]] == figures["ci95_independent_draws"] and row[10] == figures["independent_draws"]
        assert row[11] <= row[4] <= row[3] <= row[5] <= row[12]
    assert {r[2] for r in looks.rows} == {"false alarm", "power"}
    assert len(scenarios.rows) == len(study["rows"])
    # every scenario's escalations read with their Wilson interval, e.g. "6/20 (15%-52%)"; the bias with its MC SE
    shown = {(row[0], row[1], row[2], row[3], row[4]): row for row in scenarios.rows}
    for r in study["rows"]:
        row = shown[(f"{r['hr']:g}", f"{100 * r['baseline']:g}%", r["ancestry"], f"{r['persons']:,}", r["group"])]
        low, high = r["escalated_ci95"]
        assert low <= r["escalations"] / r["seeds"] <= high
        assert row[-1] == f"{r['escalations']}/{r['seeds']} ({low:.0%}-{high:.0%})"
        assert r["bias"] is None or row[7] == f"{r['bias']:+.3f} ± {r['bias_mcse']:.3f}"
    for by_hr in groups.values():
        for figures in by_hr.values():
            hits, seeds = map(int, figures["highest_cell_escalations"].split("/"))
            assert hits / seeds == pytest.approx(figures["highest_cell"], abs=1e-4)
    assert {(r["hr"], r["ancestry"], r["persons"]) for r in study["rows"]} >= {
        (hr, ancestry, persons) for hr in (0.7, 1.0, 1.2, 1.5, 2.0, 3.0) for ancestry in ("default", "east-asian")
        for persons in (100_000, 400_000)
    }  # fmt: skip
