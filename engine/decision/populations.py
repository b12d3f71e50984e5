"""Choosing the CPIC population (indication, age) a recommendation is read for.

When the request tells us the patient's diagnoses or age, the matching population is used and
the card says why. When it does not, the rule's default population, by convention the
strictest, is used, and the card says that too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from engine.decision.rules import GENERAL, Code, Population, Rule

SYSTEMS = {
    "snomed": "http://snomed.info/sct",
    "icd10": "http://hl7.org/fhir/sid/icd-10-cm",
}
_ICD10_URIS = {"http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10"}


class PatientFacts(NamedTuple):
    """What the request says about the patient beyond results: coded diagnoses, age in years, sex.

    ``sex`` is "female", "male" or None (unknown, or FHIR's "other"/"unknown"): G6PD needs it.
    A NamedTuple: built on every hook call, where a frozen dataclass's ``__init__`` costs twice as much.
    """

    conditions: frozenset[tuple[str, str]] = frozenset()  # (system URI, code)
    age: int | None = None
    sex: str | None = None

    @property
    def selects_population(self) -> bool:
        """Whether these facts can choose a population (diagnoses or age); else each rule's default holds."""
        return bool(self.conditions) or self.age is not None


def has_condition(codes: Iterable[Code], facts: PatientFacts) -> Code | None:
    """The first of ``codes`` the patient has a diagnosis for."""
    if not facts.conditions:
        return None
    return next((code for code in codes if _matches(code, facts.conditions)), None)


def _matches(code: Code, conditions: frozenset[tuple[str, str]]) -> bool:
    system = SYSTEMS.get(code.system, code.system)
    if system in _ICD10_URIS:
        # ICD-10 is hierarchical in its codes: I21 covers I21.4; EHRs send either ICD-10 URI.
        wanted = code.code.replace(".", "")
        return any(s in _ICD10_URIS and c.replace(".", "").startswith(wanted) for s, c in conditions)
    return (system, code.code) in conditions


@dataclass(frozen=True)
class PopulationChoice:
    id: str
    population: Population | None = None
    why: str | None = None


def choose_population(rule: Rule, facts: PatientFacts) -> PopulationChoice:
    """The population to read the rule's recommendations for, and why it was chosen."""
    if not rule.populations:
        return PopulationChoice(GENERAL)
    for population in rule.populations if facts.conditions else ():
        hits = [code for code in population.conditions if _matches(code, facts.conditions)]
        if hits:
            named = hits[0].display or hits[0].code
            return PopulationChoice(population.id, population, f"from the patient's diagnosis ({named})")
    if facts.age is not None:
        for population in rule.populations:
            if population.min_age is None and population.max_age is None:
                continue
            if (
                (population.min_age or 0)
                <= facts.age
                <= (population.max_age if population.max_age is not None else 200)
            ):
                return PopulationChoice(population.id, population, f"from the patient's age ({facts.age})")
    default = rule.population(rule.default_population)
    why = "the patient's indication or age was not available to this service, so the default is shown"
    return PopulationChoice(rule.default_population, default, why)
