"""Gene definition files (``rules/genes/<GENE>.yaml``): their schema and the shared machinery.

A gene file states, as CPIC does, what each allele does and how a patient's two alleles become
a phenotype. There are four kinds, one module each:

- ``function pair`` (engine.genotype.function_pair): allele -> clinical function; a pair of functions ->
  phenotype (CYP2C19, CYP3A5, TPMT, NUDT15, SLCO1B1, UGT1A1, VKORC1).
- ``activity score`` (engine.genotype.activity_score): allele -> activity value; the sum -> phenotype
  (CYP2C9, CYP2D6, DPYD). Recommendations are looked up by the score.
- ``allele presence`` (engine.genotype.allele_presence): whether each allele of interest is carried
  (HLA-A, HLA-B), or, with ``phenotypes``, CPIC's "any listed variant present" rule (RYR1,
  CACNA1S, MT-RNR1, CFTR).
- ``x-linked`` (engine.genotype.x_linked): a function pair for two X chromosomes, one allele's function for
  a hemizygous male (G6PD); the patient's sex decides which applies.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.genotype.calls import INDETERMINATE, PhenotypeCall, indeterminate, stated_agrees
from engine.genotype.notations import SUBALLELE, NotationReader, Position, Reading
from engine.genotype.scores import parse_score

MOST_ALTERNATIVES = 8  # Cyrius and labs list a few; thousands would only cost time
# A genotype, even with a lab's qualifiers and a few alternatives ("*1/*2 or *1/*35"), is a few
# dozen characters. A longer value in a FHIR result is not read: it is Indeterminate unparsed and
# uncached, so a hostile value (the body may hold megabytes) costs neither CPU nor cache memory.
MOST_CHARACTERS = 1_000
# Between the possible diplotypes of an ambiguous call: ";" (genotype callers) or the word "or".
_ALTERNATIVES = re.compile(r"\s*;\s*|\s+or\s+", re.IGNORECASE)


class Citation(BaseModel):
    """Where the facts in a file come from."""

    model_config = ConfigDict(extra="forbid")

    citation: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://\S+$")
    data: str | None = None


class PositionSpec(BaseModel):
    """A position tested on its own, as labs name it, and the allele each base stands for."""

    model_config = ConfigDict(extra="forbid")

    names: list[str] = Field(min_length=1, description='e.g. ["rs4149056", "c.521"]')
    bases: dict[str, str] = Field(
        min_length=2, description="base (A, C, G, T) -> allele; the reference base first (a change is read from it)"
    )

    @field_validator("bases")
    @classmethod
    def _nucleotides(cls, value: dict[str, str]) -> dict[str, str]:
        for base in value:
            if base not in ("A", "C", "G", "T"):
                raise ValueError(f"base {base!r} must be one of A, C, G, T")
        return value


class _GeneFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gene: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]*$")
    hgnc: str = Field(pattern=r"^HGNC:\d+$", description="HGNC identifier, as FHIR results carry it")
    source: Citation
    notations: dict[str, str] = Field(
        default_factory=dict, description="Other ways labs write a diplotype -> the diplotype as written here"
    )
    allele_names: dict[str, str] = Field(
        default_factory=dict, description="Other names labs give an allele (legacy, repeat counts) -> the allele"
    )
    synonyms_separated_by_commas: bool = Field(
        default=False,
        description="An allele name listing several names ('Mediterranean, Dallas, Panama') is one variant: "
        "each of them names it",
    )
    reference_allele: str | None = Field(
        default=None, description="The allele meant by 'heterozygous' for one named variant (DPYD: Reference)"
    )
    positions: list[PositionSpec] = Field(
        default_factory=list, description="Single-position results (rs4149056 T/C): the position's names and bases"
    )
    examples: dict[str, str] = Field(default_factory=dict, description="diplotype -> expected phenotype")


def _allele_names(value: dict) -> dict:
    for name in value:
        if "/" in name or not name.strip():
            raise ValueError(f"allele name {name!r} must be non-empty and contain no '/'")
    return value


class FunctionPairFile(_GeneFile):
    kind: Literal["function pair"]
    alleles: dict[str, str] = Field(min_length=1, description="allele -> CPIC clinical function")
    phenotypes: dict[str, list[tuple[str, str]]] = Field(
        min_length=1, description="phenotype -> the pairs of allele functions that give it"
    )

    _names = field_validator("alleles")(_allele_names)


class AlleleActivity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    function: str = Field(min_length=1)
    activity: float | str | None = Field(default=None, description='activity value; "≥3.0" for copies ≥ 3')


class ActivityScoreFile(_GeneFile):
    kind: Literal["activity score"]
    alleles: dict[str, AlleleActivity] = Field(min_length=1)
    phenotypes: dict[str, str] = Field(min_length=1, description='phenotype -> score range ("0.25 to 1.0")')
    variants_on_one_strand: Literal["lowest activity"] | None = Field(
        default=None,
        description="A phased result listing several variants on one strand: the strand counts as its "
        "lowest-activity variant (CPIC DPYD, as PharmCAT applies it); without this such a result is Indeterminate",
    )

    _names = field_validator("alleles")(_allele_names)


class PresencePhenotypes(BaseModel):
    """CPIC's phenotype for "an allele of interest is carried", "only other alleles", and "an uncertain one"."""

    model_config = ConfigDict(extra="forbid")

    present: str = Field(min_length=1, description="Any allele of interest carried")
    absent: str = Field(min_length=1, description="Only the reference or other_alleles carried")
    uncertain: str | None = Field(default=None, description="An allele of uncertain_alleles carried, none of interest")


class AllelePresenceFile(_GeneFile):
    kind: Literal["allele presence"]
    alleles_of_interest: dict[str, str] = Field(min_length=1, description="allele -> why it matters")
    fields: int | None = Field(default=None, ge=1, le=4, description="HLA: allele fields compared (2 = *57:01)")
    other_alleles: list[str] = Field(
        default_factory=list,
        description="Without fields: the other alleles known not to carry an allele of interest; any other name "
        "gives Indeterminate",
    )
    uncertain_alleles: list[str] = Field(
        default_factory=list, description="With phenotypes: alleles whose carriers get phenotypes.uncertain"
    )
    phenotypes: PresencePhenotypes | None = Field(
        default=None, description="CPIC's phenotype names, for genes looked up by one phenotype (RYR1, MT-RNR1)"
    )


class XLinkedFile(_GeneFile):
    kind: Literal["x-linked"]
    alleles: dict[str, str] = Field(min_length=1, description="allele -> CPIC clinical function")
    hemizygous: dict[str, str] = Field(min_length=1, description="A male's one allele: its function -> phenotype")
    phenotypes: dict[str, list[tuple[str, str]]] = Field(
        min_length=1, description="Two X chromosomes: phenotype -> the pairs of allele functions that give it"
    )
    female_examples: dict[str, str] = Field(default_factory=dict, description="diplotype -> phenotype for a female")
    male_examples: dict[str, str] = Field(default_factory=dict, description="allele(s) -> phenotype for a male")

    _names = field_validator("alleles")(_allele_names)


GeneFile = Annotated[
    FunctionPairFile | ActivityScoreFile | AllelePresenceFile | XLinkedFile, Field(discriminator="kind")
]


def allele_sort_key(name: str) -> tuple:
    """Order alleles the way CPIC tables do: ``*2`` before ``*17``, names after numbers."""
    if name.startswith("*"):
        # isdecimal, not isdigit: "²" is a digit that int() refuses (a 500 for "*²/*1").
        digits = "".join(itertools.takewhile(str.isdecimal, name[1:]))
        if digits:
            return (0, int(digits), name[1 + len(digits) :])
    return (1, 0, name)


def _notation_key(text: str) -> str:
    return " ".join(text.split()).casefold()


def _score_agrees(stated: str, called: str | None) -> bool:
    """Whether a stated activity score is the called one (or within it: "≥3.0" for an unknown copy number)."""
    interval = parse_score(called) if called else None
    return interval is not None and interval.low <= float(stated) <= interval.high


class GeneDefinition:
    """A validated gene file: turns diplotypes (and reported phenotypes) into phenotype calls."""

    kind: str
    uses_sex = False  # whether the patient's sex changes the call (X-linked genes)

    def __init__(self, spec: _GeneFile, source: str):
        self.symbol = spec.gene
        self.hgnc = spec.hgnc
        self.source = source
        self.citation = spec.source
        self.examples = dict(spec.examples)
        self.notations = {_notation_key(alias): diplotype for alias, diplotype in spec.notations.items()}
        self.allele_names = dict(spec.allele_names)
        if spec.synonyms_separated_by_commas:
            self._add_synonyms(spec)
        self.reference_allele = spec.reference_allele
        self.positions = tuple(Position(tuple(p.names), dict(p.bases)) for p in spec.positions)
        self.phenotypes: tuple[str, ...] = (INDETERMINATE,)
        symbol = re.escape(self.symbol)
        self._leading_symbol = re.compile(rf"^{symbol}\s+", re.IGNORECASE)
        self._inline_symbol = re.compile(rf"{symbol}\s*(?=\*)", re.IGNORECASE)

    def known_alleles(self) -> tuple[str, ...]:
        """The allele names this gene file defines."""
        return ()

    def _add_synonyms(self, spec: _GeneFile) -> None:
        """Each name of a comma-separated list names the allele ("Mediterranean" for "Mediterranean, Dallas, ...").

        The reader drops a name two alleles would claim, so a synonym never picks one of two alleles.
        """
        for name in getattr(spec, "alleles", {}):
            synonyms = [part.strip() for part in name.split(",")]
            if len(synonyms) > 1:
                for synonym in synonyms:
                    self.allele_names.setdefault(synonym, name)

    @cached_property
    def reader(self) -> NotationReader:
        """The gene's notation reader (built on first use; the loader builds it at load time)."""
        terms = [term for term in self.phenotypes if term != INDETERMINATE]
        return NotationReader(self.known_alleles(), self.allele_names, terms, self.reference_allele, self.positions)

    # --- diplotypes ---------------------------------------------------------------------------

    def call(self, text: str, sex: str | None = None) -> PhenotypeCall:
        """Phenotype one genotype string (use engine.genotype.phenotyper.call_diplotype: it caches).

        The strict reading (``allele/allele`` in the file's own names) comes first; only what it
        cannot call goes to the notation reader, so the reader never changes a call it made.
        ``sex`` ("female", "male" or None when unknown) matters only where ``uses_sex`` is set.
        """
        if len(text) > MOST_CHARACTERS:
            reason = f"a genotype of {len(text)} characters, longer than any lab writes one"
            return indeterminate(self.symbol, None, reason)
        # One space between words: the readings' patterns ("\s*[;,]\s*", "(.+?)\s*x\s*(\d+)") then
        # never meet a run of whitespace, on which they backtracked quadratically.
        text = " ".join(text.split())
        written = self.call_as_written(text, sex)
        if written.definite or written.functions:  # functions: both alleles known, CPIC gives no phenotype
            return written
        alternatives = self.alternatives(text)
        if alternatives:
            return self._agreed(alternatives, sex)
        return self.call_normalised(text, sex)

    def alternatives(self, text: str) -> list[str] | None:
        """The diplotypes of an ambiguous call, as genotype callers print them ("*1/*46;*43/*45", Cyrius)
        and labs write them ("*1/*2 or *1/*35"); None for one diplotype."""
        parts = _ALTERNATIVES.split(text.strip())
        return parts if len(parts) > 1 and all("/" in part for part in parts) else None

    def _agreed(self, alternatives: list[str], sex: str | None) -> PhenotypeCall:
        """The call every alternative gives, or Indeterminate: choosing one would be a guess."""
        if len(alternatives) > MOST_ALTERNATIVES:
            return indeterminate(self.symbol, None, f"{len(alternatives)} possible diplotypes, more than callers list")
        calls = [self.call(part, sex) for part in alternatives]
        named = (call.diplotype or part for call, part in zip(calls, alternatives, strict=True))
        written = " or ".join(dict.fromkeys(named))
        unread = next((call for call in calls if not call.definite), None)
        if unread is not None:
            return indeterminate(self.symbol, written, f"one of the possible diplotypes: {unread.reason}")
        if len({(call.phenotype, call.activity_score, call.keys) for call in calls}) > 1:
            each = "; ".join(f"{call.diplotype} is {self.describe(call)}" for call in calls)
            return indeterminate(self.symbol, written, f"the possible diplotypes differ: {each}")
        functions = calls[0].functions if all(call.functions == calls[0].functions for call in calls) else ()
        return replace(calls[0], diplotype=written, functions=functions)

    def call_as_written(self, text: str, sex: str | None = None) -> PhenotypeCall:
        """The strict reading: two allele names as this file writes them (gene prefix and order aside)."""
        stripped = self._strip_gene(text.strip())
        stripped = self.notations.get(_notation_key(stripped), stripped)
        alleles = self.split(stripped)
        if alleles is None:
            return indeterminate(self.symbol, text.strip() or None, f"not a diplotype: {text.strip()!r}")
        return self._unmixed(alleles) or self._call(alleles, sex)

    def _call(self, alleles: list[str], sex: str | None) -> PhenotypeCall:
        return self.call_alleles(alleles, sex) if self.uses_sex else self.call_alleles(alleles)

    def call_normalised(self, text: str, sex: str | None = None) -> PhenotypeCall:
        """The notation reader's reading: lab and PharmCAT spellings (engine.genotype.notations)."""
        stripped = self._strip_gene(text.strip())
        stripped = self.notations.get(_notation_key(stripped), stripped)
        reading = self.reader.read(stripped)
        if isinstance(reading, str):
            return indeterminate(self.symbol, text.strip() or None, reading)
        names = [name for strand in reading.strands for name in strand]
        strands = self.call_strands(reading.strands, sex) if self.uses_sex else self.call_strands(reading.strands)
        return self._qualified(self._unmixed(names) or strands, reading)

    def call_strands(self, strands: tuple[tuple[str, ...], ...], sex: str | None = None) -> PhenotypeCall:
        """Phenotype two strands; a strand listing several variants is Indeterminate unless the kind knows better."""
        several = [" + ".join(strand) for strand in strands if len(strand) > 1]
        if several:
            return indeterminate(
                self.symbol, "/".join(" + ".join(s) for s in strands), f"several alleles on one strand: {several[0]}"
            )
        return self._call([strand[0] for strand in strands], sex)

    def _unmixed(self, names: list[str]) -> PhenotypeCall | None:
        """Indeterminate when a single-position result is paired with an allele of another kind."""
        positional = [name in self.reader.position_alleles for name in names]
        if any(positional) and not all(positional):
            return indeterminate(
                self.symbol, "/".join(names), "a single-position result cannot be paired with another kind of allele"
            )
        return None

    def _qualified(self, call: PhenotypeCall, reading: Reading) -> PhenotypeCall:
        """Check a stated zygosity or phenotype against the call; a mismatch is Indeterminate."""
        if not call.definite:
            return call
        first, second = reading.strands
        if reading.zygosity is not None and (reading.zygosity == "heterozygous") == (first == second):
            reason = f"stated {reading.zygosity}, but the alleles are {call.diplotype}"
            return indeterminate(self.symbol, call.diplotype, reason)
        if reading.stated and not stated_agrees(reading.stated, call.phenotype):
            return indeterminate(
                self.symbol, call.diplotype, f"stated {reading.stated}, but {call.diplotype} is {call.phenotype}"
            )
        if reading.score is not None and not _score_agrees(reading.score, call.activity_score):
            scored = f"activity score {call.activity_score}" if call.activity_score else "no activity score"
            reason = f"stated activity score {reading.score}, but {call.diplotype} has {scored}"
            return indeterminate(self.symbol, call.diplotype, reason)
        return call

    def _strip_gene(self, text: str) -> str:
        """Drop the gene symbol labs put in front: "CYP2C19 *1/*2", "CYP2C19*1/CYP2C19*2", "VKORC1 C/T"."""
        return self._inline_symbol.sub("", self._leading_symbol.sub("", text))

    def split(self, text: str) -> list[str] | None:
        """The two allele names of a diplotype, or None."""
        parts = [part.strip() for part in text.split("/")]
        return parts if len(parts) == 2 and all(parts) else None

    def call_alleles(self, alleles: list[str], sex: str | None = None) -> PhenotypeCall:
        raise NotImplementedError

    def example_sets(self) -> list[tuple[str, str | None, dict[str, str]]]:
        """(file field, patient sex, diplotype -> expected phenotype) for each block of worked examples."""
        return [("examples", None, self.examples)]

    def defined_alleles(self, alleles: list[str], known: dict) -> tuple[list[str], str, PhenotypeCall | None]:
        """``alleles`` as the file's names in CPIC order, their diplotype, and Indeterminate if ``known`` lacks any."""
        names = sorted((self.canonical_allele(name, known) for name in alleles), key=allele_sort_key)
        diplotype = "/".join(names)
        unknown = [name for name in names if name not in known]
        if not unknown:
            return names, diplotype, None
        reason = f"allele not in the {self.symbol} definitions: {', '.join(dict.fromkeys(unknown))}"
        return names, diplotype, indeterminate(self.symbol, diplotype, reason)

    def canonical_allele(self, name: str, known: dict) -> str:
        """The defined allele ``name`` stands for: PharmVar sub-alleles (*2.001) share the core allele's function."""
        if name in known:
            return name
        match = SUBALLELE.match(name)
        if match and match.group(1) in known:
            return match.group(1)
        return name

    # --- reported phenotypes and rule lookups -------------------------------------------------

    def reported(self, text: str) -> PhenotypeCall | None:
        """A call from a phenotype stated without a diplotype ("poor metabolizer"), if recognised."""
        wanted = " ".join(text.split()).casefold().removeprefix(self.symbol.casefold() + " ")
        for term in self.phenotypes:
            if term.casefold() == wanted:
                return PhenotypeCall(self.symbol, None, term)
        return None

    def lookup_values(self) -> tuple[str, ...]:
        """The values a rule may key a recommendation on for this gene (besides ranges)."""
        return self.phenotypes

    def representative_calls(self) -> list[PhenotypeCall]:
        """One call for every distinct lookup outcome, to check that rules cover them all."""
        return [PhenotypeCall(self.symbol, None, phenotype) for phenotype in self.phenotypes]

    def describe(self, call: PhenotypeCall) -> str:
        """A short text naming the result, for messages and event logs."""
        return call.phenotype
