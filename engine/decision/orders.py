"""The medication orders a hook asks about, reduced to what rule matching needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RXNORM_SYSTEM = "http://www.nlm.nih.gov/research/umls/rxnorm"


@dataclass(frozen=True, slots=True)
class Order:
    """A draft medication order: its reference, its RxNorm codes, and what a suggested replacement keeps."""

    reference: str  # "MedicationRequest/123", as the suggestion's delete action names it
    rxnorm: frozenset[str]
    display: str | None = None  # the medication's text as the EHR names it
    # The draft's visit, indication, category and priority, already checked against their R4 shapes.
    carried: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
