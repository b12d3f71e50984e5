"""The medication orders a hook asks about, reduced to what rule matching needs."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

RXNORM_SYSTEM = "http://www.nlm.nih.gov/research/umls/rxnorm"


class Order(NamedTuple):
    """A draft medication order: its reference, its RxNorm codes, and what a suggested replacement keeps.

    A NamedTuple: one is built per draft order on every hook call, where a frozen dataclass's
    ``__init__`` costs twice as much.
    """

    reference: str  # "MedicationRequest/123", as the suggestion's delete action names it
    rxnorm: frozenset[str]
    display: str | None = None  # the medication's text as the EHR names it
    # The draft's visit, indication, category and priority, already checked against their R4 shapes.
    carried: Mapping[str, Any] = MappingProxyType({})  # read-only: the default is shared
