"""Simulated OMOP databases for the learning-loop tests: small, fast, with a stated truth."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from analytics.data.store import LOOP_TABLES, connect
from analytics.settings import Paths
from analytics.simulation.simulate import Truth, simulate
from engine.rulebook.library import Library
from engine.runtime.identifiers import Identifiers

CLOPIDOGREL = "cyp2c19-clopidogrel"
SIMVASTATIN = "slco1b1-simvastatin"


def truth(clopidogrel: dict[str, float] | None = None, simvastatin: dict[str, float] | None = None,
          rate: float = 0.3) -> Truth:  # fmt: skip
    """The default (literature) truth with hazard ratios replaced, and outcomes common enough for small N."""
    result = Truth()
    for rule_id, ratios in ((CLOPIDOGREL, clopidogrel), (SIMVASTATIN, simvastatin)):
        spec = result.rules[rule_id]
        spec["baseline_rate"] = rate if rule_id == CLOPIDOGREL else rate / 3
        if ratios is not None:
            spec["hazard_ratio"] = dict(ratios)
    return result


NULL = {"Intermediate Metabolizer": 1.0, "Poor Metabolizer": 1.0}
NULL_STATIN = {"Decreased Function": 1.0, "Poor Function": 1.0}


def simulated(library: Library, persons: int, seed: int, effects: Truth, path: Path | None = None):
    """A connection to a simulated database (in memory unless ``path``)."""
    con = connect(path) if path else duckdb.connect()
    con.execute(LOOP_TABLES)
    simulate(con, library, persons=persons, seed=seed, truth=effects, identifiers=Identifiers(b"k" * 32))
    return con


def paths_in(directory: Path, database: Path) -> Paths:
    """Analytics paths for a copy of ``database`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "loop.duckdb"
    shutil.copy(database, target)
    return Paths(target, directory / "events", directory / "strengths.json")


def query(paths: Paths, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of ``sql`` on the loop's database, read-only."""
    con = duckdb.connect(str(paths.database), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()
