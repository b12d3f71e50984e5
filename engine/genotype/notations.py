"""Genotypes as labs and PharmCAT write them -> the allele names of a gene file.

One reader per gene, built when the gene file loads (all lookup tables and patterns then, none
per call). It is the genotype stage shared by ``pgx-loop phenotype``, rule examples and the
service's FHIR results: every path reaches it through ``GeneDefinition.call``.

What it reads, beyond the strict ``allele/allele`` form:

- allele names in any case and spacing (``reference/hapb3``, ``*36+*10``), a tandem written in
  the other order (``*4+*68`` for ``*68 + *4``) when that names one defined tandem only, PharmVar
  sub-alleles in a tandem (Aldy's ``*36.001+*10.001``);
- the other names a gene file gives an allele (``allele_names``: DPYD ``*2A``, UGT1A1
  ``(TA)7``, pre-2022 SLCO1B1 ``*1B``), and the name in brackets of a defined allele
  (``c.1905+1G>A`` and ``*2A`` for ``c.1905+1G>A (*2A)``);
- a phased bar (``*1|*2``), a zygosity in front (``Homozygous for *2``), a trailing zygosity
  word or phenotype (``*1/*2 (heterozygous)``, ``*1/*2 Intermediate Metabolizer``): the zygosity
  must fit the alleles and the phenotype must be the one they give, else the result is Indeterminate;
- one variant and its zygosity (``c.2846A>T heterozygous``) where the gene names its reference
  allele, and HGVS's genotype (``c.[1905+1G>A];[=]``, ``c.[2846A>T];[1905+1G>A]``);
  single-position genotypes (``rs4149056 T/C``, ``-1639 G>A homozygous``) where the gene file
  lists the position;
- several variants on one strand (``[c.498G>A + c.2582A>G]/[...]``) and an unknown copy number
  (``*1/*1xN``, ``*1/*2dup``): the gene kind decides what they mean (engine.genotype.activity_score).

Anything it cannot read is left for the gene to call Indeterminate; nothing is guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from engine.genotype.calls import stated_agrees

ZYGOSITY = {
    "heterozygous": "heterozygous",
    "heterozygote": "heterozygous",
    "het": "heterozygous",
    "homozygous": "homozygous",
    "homozygote": "homozygous",
    "hom": "homozygous",
}
# The usual abbreviations of metabolizer phenotypes, accepted after a diplotype.
ABBREVIATIONS = {
    "pm": "Poor Metabolizer",
    "im": "Intermediate Metabolizer",
    "nm": "Normal Metabolizer",
    "rm": "Rapid Metabolizer",
    "um": "Ultrarapid Metabolizer",
}
UNKNOWN_COPIES = "xN"
# A duplication whose copy number is not stated: "*1xN", "*2dup". Not "*1/*4 DUP": written apart,
# it may not say which allele is duplicated.
_COPIES_N = re.compile(r"^(?P<base>.+?)(?:\s*[x×]\s*n|(?<=\S)dup)$", re.IGNORECASE)
# A PharmVar sub-allele ("*4.001"): it has its core allele's function.
SUBALLELE = re.compile(r"^(\*\d+[A-Za-z]*)\.\d+$")
_LEADING_ZYGOSITY = re.compile(rf"^(?P<word>{'|'.join(ZYGOSITY)})(?:\s+for)?\s*:?\s+(?P<rest>\S.*)$", re.IGNORECASE)
# An activity score written after the genotype: "(AS 1.5)", "AS=1.5", ", activity score 1.5".
_SCORE = r"(?<![A-Za-z])(?:AS|activity\s+score)\s*[:=]?\s*(?P<{}>\d+(?:\.\d+)?)"
# Searched for at the end (no leading ".*?": on a long run of separators that backtracked quadratically).
_STATED_SCORE = re.compile(rf"(?:\(\s*{_SCORE.format('inner')}\s*\)|{_SCORE.format('bare')})$", re.IGNORECASE)
_TRAILING_PAREN = re.compile(r"^(?P<body>.*\S)\s*\((?P<word>[^()]+)\)$")
_SEPARATORS = " ,;:-–—"  # before a trailing qualifier: "*1/*2 - IM", "*1/*2 – IM", "*1/*2 — IM"
_DASHES = "-–—"
# A defined name with another in brackets: "c.1905+1G>A (*2A)", "... (HapB3)"; not a lone base ("(C)").
_BRACKETED = re.compile(r"(?P<main>.+?)\s*\((?P<other>[^()]{2,})\)")
# HGVS's genotype: "c.[1905+1G>A];[=]" (one strand each in brackets, "=" the reference,
# variants of one strand separated by ";": "c.[498G>A;2582A>G];[=]").
_HGVS_GENOTYPE = re.compile(r"^c\.\[(?P<first>[^\[\]]+)\];\[(?P<second>[^\[\]]+)\]$")
# "+" joins the parts of a tandem or the variants of a strand; in "c.1905+1G>A" it is part of a name.
_PLUS = re.compile(r"\s*\+\s*(?=[^\s\d])")


def name_key(name: str) -> str:
    """How two spellings of one allele name compare: case and spacing do not matter, nor the
    multiplication sign labs print for a copy number ("*4×2" is "*4x2")."""
    return "".join(name.split()).casefold().replace("×", "x")


@dataclass(frozen=True, slots=True)
class Position:
    """A single-position result: the names labs give the position and the allele each base stands for.

    The first base is the reference: a change is read only from it ("c.521T>C", not "c.521C>T").
    """

    names: tuple[str, ...]
    bases: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Reading:
    """What a genotype text says, in the gene file's allele names.

    ``strands`` holds one tuple of allele names per strand (one name, unless a phased result
    lists several variants on a strand). ``stated`` is a phenotype written after the genotype,
    ``score`` an activity score ("*1/*41 (AS 1.5)").
    """

    strands: tuple[tuple[str, ...], ...]
    zygosity: str | None = None
    stated: str | None = None
    score: str | None = None


class NotationReader:
    """Reads one gene's genotype notations; build it once per gene definition."""

    def __init__(
        self,
        alleles: Iterable[str],
        aliases: Mapping[str, str],
        phenotypes: Iterable[str],
        reference: str | None = None,
        positions: Iterable[Position] = (),
    ):
        known = list(alleles)
        self.reference = reference
        self._names = _name_table(known, aliases)
        self._tandems = _tandem_table(known)
        qualifiers = dict(ZYGOSITY)
        terms = {term.casefold(): term for term in phenotypes}
        qualifiers.update(terms)
        qualifiers.update({short: term for short, term in ABBREVIATIONS.items() if term.casefold() in terms})
        self._qualifiers = qualifiers
        # Longest first, so "poor metabolizer" is not read as "... metabolizer" of another term.
        self._suffixes = sorted(qualifiers, key=len, reverse=True)
        self._positions = _position_patterns(tuple(positions))
        self.position_alleles = frozenset(allele for p in positions for allele in p.bases.values())

    # --- allele names -------------------------------------------------------------------------

    def allele(self, name: str) -> str:
        """The gene file's name for ``name``, or ``name`` itself when it names no defined allele."""
        name = name.strip()
        return self.defined(name) or name

    def defined(self, name: str) -> str | None:
        """The defined allele ``name`` stands for, if any (``*1xN``: its base allele, copies unknown)."""
        found = self._names.get(name_key(name))
        if found is not None:
            return found
        copies = _COPIES_N.match(name)
        if copies:
            base = self.defined(copies["base"])
            return f"{base}{UNKNOWN_COPIES}" if base else None
        core = SUBALLELE.match(name.strip())
        if core:
            return self.defined(core[1])
        parts = _PLUS.split(name)
        if len(parts) > 1:
            canonical = [self.allele(part) for part in parts]
            joined = self._names.get(name_key(" + ".join(canonical)))
            return joined or self._tandems.get(_tandem_key(canonical))
        return None

    # --- whole genotypes ----------------------------------------------------------------------

    def read(self, text: str) -> Reading | str:
        """The strands ``text`` describes, or why it cannot be read (a reason for Indeterminate)."""
        qualified = self._qualified(" ".join(text.split()))
        if isinstance(qualified, str):
            return f"{qualified}: {text.strip()!r}"
        body, zygosity, stated, score = qualified
        reading = self._body(body, zygosity, stated, text)
        return replace(reading, score=score) if score is not None and isinstance(reading, Reading) else reading

    def _body(self, body: str, zygosity: str | None, stated: str | None, text: str) -> Reading | str:
        """What the genotype, its qualifiers stripped, says."""
        position = self._position(body, zygosity, stated)
        if position is not None:
            return position
        hgvs = _HGVS_GENOTYPE.match(body)
        if hgvs is not None:
            strands = (self._hgvs_strand(hgvs["first"]), self._hgvs_strand(hgvs["second"]))
            if () in strands:
                return f"'=' (the reference) with no reference allele named for this gene, or with a variant: {body!r}"
            return Reading(strands, zygosity, stated)
        parts = _split_strands(body)
        if parts is None:
            return f"not a diplotype: {text.strip()!r}"
        if len(parts) == 1:
            if zygosity is None:
                return f"one allele without its zygosity: {text.strip()!r}"
            strand = self._strand(parts[0])
            if zygosity == "homozygous":
                return Reading((strand, strand), zygosity, stated)
            if self.reference is None:
                return f"one allele stated heterozygous, and this gene names no reference allele: {text.strip()!r}"
            return Reading(((self.reference,), strand), zygosity, stated)
        return Reading((self._strand(parts[0]), self._strand(parts[1])), zygosity, stated)

    def _strand(self, text: str) -> tuple[str, ...]:
        text = text.strip()
        if text.startswith("[") and text.endswith("]"):
            return tuple(self.allele(part) for part in _PLUS.split(text[1:-1]))
        whole = self.defined(text)
        if whole is not None or "+" not in text:
            return (whole or text,)
        return tuple(self.allele(part) for part in _PLUS.split(text))

    def _hgvs_strand(self, text: str) -> tuple[str, ...]:
        """One bracket of an HGVS genotype as allele names; () when "=" cannot be read."""
        variants = [part.strip() for part in text.split(";")]
        if variants == ["="]:
            return (self.reference,) if self.reference else ()
        if "=" in variants:
            return ()
        return tuple(self.allele("c." + variant) for variant in variants)

    def _qualified(self, text: str) -> tuple[str, str | None, str | None, str | None] | str:
        """Strip trailing zygosity and phenotype words and an activity score: "(heterozygous)",
        "Poor Metabolizer", "PM", "(AS 1.5)".

        Two of one kind must agree ("*2/*2 PM (Poor Metabolizer)"); two that differ ("*1/*2 PM IM",
        "het hom") contradict each other, and the reason is returned instead: keeping either one
        would be a guess.
        """
        zygosity = stated = score = None
        leading = _LEADING_ZYGOSITY.match(text)
        if leading is not None:  # "Homozygous for *2", "heterozygous c.1905+1G>A"
            zygosity, text = ZYGOSITY[leading["word"].casefold()], leading["rest"]
        for _ in range(3):
            stated_score = _STATED_SCORE.search(text)
            body = _before_qualifier(text[: stated_score.start()]) if stated_score is not None else ""
            if body:
                if score is not None:
                    return "stated two activity scores"
                text, score = body, stated_score["inner"] or stated_score["bare"]
                continue
            found = self._trailing(text)
            if found is None:
                break
            text, word = found
            meaning = self._qualifiers[word]
            if meaning in ("heterozygous", "homozygous"):
                if zygosity is not None and zygosity != meaning:
                    return f"stated both {meaning} and {zygosity}"
                zygosity = meaning
            else:
                if stated is not None and not stated_agrees(meaning, stated):
                    return f"stated both {meaning} and {stated}"
                stated = stated or meaning
        return text, zygosity, stated, score

    def _trailing(self, text: str) -> tuple[str, str] | None:
        paren = _TRAILING_PAREN.match(text)
        if paren and paren["word"].strip().casefold() in self._qualifiers:
            return _before_qualifier(paren["body"]), paren["word"].strip().casefold()
        folded = text.casefold()
        for word in self._suffixes:
            cut = len(text) - len(word)
            if cut > 0 and folded.endswith(word) and text[cut - 1] in _SEPARATORS:
                return _before_qualifier(text[:cut]), word
        return None

    def _position(self, text: str, zygosity: str | None, stated: str | None) -> Reading | str | None:
        """A single-position genotype, keeping any phenotype written after it to be checked like any other."""
        for pattern, bases in self._positions:
            match = pattern.match(text)
            if match is None:
                continue
            if match["first"]:
                first, second = match["first"].upper(), match["second"].upper()
                return Reading(((bases[first],), (bases[second],)), zygosity, stated)
            ref, alt = match["ref"].upper(), match["alt"].upper()
            if ref == alt:
                return f"{text!r} names no change"
            if ref != next(iter(bases)):  # "-1639 A>G": which base is the patient's "homozygous"? Not guessed.
                return f"{text!r} changes from {ref}, which is not the reference base {next(iter(bases))}"
            if zygosity is None:
                return f"{text!r} does not say whether it is heterozygous or homozygous"
            strands = ((bases[ref],), (bases[alt],)) if zygosity == "heterozygous" else ((bases[alt],),) * 2
            return Reading(strands, zygosity, stated)
        return None


def _before_qualifier(body: str) -> str:
    """``body`` without the separators before a trailing qualifier ("*1/*2 - IM" -> "*1/*2").

    A dash right after a name is part of it (G6PD "A-" is not "A", nor is "A–" as a word processor
    may print it): "B/A- heterozygous" keeps it, and "*1/*2-IM" is then not read rather than
    guessed at.
    """
    end = len(body)
    while end and body[end - 1] in _SEPARATORS:
        if body[end - 1] in _DASHES and end > 1 and body[end - 2] not in _SEPARATORS:
            break
        end -= 1
    return body[:end].rstrip()


def _split_strands(text: str) -> list[str] | None:
    """The parts of a genotype separated by "/" or a phased "|", outside brackets."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char in "/|" and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    parts = [part.strip() for part in parts]
    return parts if len(parts) <= 2 and all(parts) and depth == 0 else None


def _name_table(known: list[str], aliases: Mapping[str, str]) -> dict[str, str]:
    """Spelling key -> allele; a key two alleles could claim is left out (ambiguous, so not read)."""
    table: dict[str, str] = {name_key(name): name for name in known}
    claims: dict[str, set[str]] = {}
    for name in known:
        bracketed = _BRACKETED.fullmatch(name)
        if bracketed:  # "c.1905+1G>A (*2A)": both the variant and its legacy name
            for other in (bracketed["main"], bracketed["other"]):
                claims.setdefault(name_key(other), set()).add(name)
    for alias, name in aliases.items():
        claims.setdefault(name_key(alias), set()).add(name)
    for key, names in claims.items():
        if key not in table and len(names) == 1:
            table[key] = names.pop()
    return table


def _tandem_key(parts: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(name_key(part) for part in parts))


def _tandem_table(known: list[str]) -> dict[tuple[str, ...], str]:
    """Tandems by their parts in any order; parts two tandems share in another order are left out."""
    found: dict[tuple[str, ...], set[str]] = {}
    for name in known:
        parts = _PLUS.split(name)
        if len(parts) > 1:
            found.setdefault(_tandem_key(parts), set()).add(name)
    return {key: names.pop() for key, names in found.items() if len(names) == 1}


def _position_patterns(positions: tuple[Position, ...]) -> list[tuple[re.Pattern[str], Mapping[str, str]]]:
    patterns = []
    for position in positions:
        names = "|".join(re.escape(name) for name in sorted(position.names, key=len, reverse=True))
        bases = "".join(position.bases)
        pattern = re.compile(
            rf"^(?:{names})\s*:?\s*(?:(?P<first>[{bases}])\s*/?\s*(?P<second>[{bases}])"
            rf"|(?P<ref>[{bases}])\s*>\s*(?P<alt>[{bases}]))$",
            re.IGNORECASE,
        )
        patterns.append((pattern, {base.upper(): allele for base, allele in position.bases.items()}))
    return patterns
