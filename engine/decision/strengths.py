"""Published rule strengths: the tiers the learning loop has set, as one versioned snapshot.

Analytics writes a snapshot; the service reads it and uses its tiers (always clamped to each
recommendation's floor and ceiling). The JSON file is the contract between the two.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from engine.decision.rules import Tier
from engine.runtime.published import read_published


class Strength(BaseModel):
    """The tier local evidence sets for one rule and result, and that evidence in one line."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str
    phenotype: str
    tier: Tier
    evidence: str = Field(description="Shown on the card: local estimate, prior, posterior")
    run_id: str
    decided_at: str


class Snapshot(BaseModel):
    """Every published strength, under one version number."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=0)
    created: str
    strengths: tuple[Strength, ...] = ()

    def table(self) -> dict[tuple[str, str], Strength]:
        return {(strength.rule, strength.phenotype): strength for strength in self.strengths}


EMPTY = Snapshot(version=0, created="")


def read_snapshot(path: Path) -> Snapshot:
    """The snapshot in ``path``; EMPTY when nothing was ever published there.

    Raises ``OSError`` or ``pydantic.ValidationError`` for a file that cannot be read or is not a snapshot.
    """
    return read_published(path, Snapshot, EMPTY)
