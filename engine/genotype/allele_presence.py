"""Genes read as "is this allele carried?" (HLA-A, HLA-B), as CPIC and PharmCAT do.

A result such as ``*15:02/*57:01`` gives one status per allele of interest:
``*15:02 positive; *57:01 positive; *58:01 negative``. HLA names are compared at two fields
(``*57:01:01`` is ``*57:01``). Both "/" and GL-string "+" separate alleles; a listed allele
counts as carried, the cautious reading of an ambiguous typing. A name that is not an HLA
allele gives Indeterminate. Genes with star alleles (CYP4F2) list the alleles they know; any
other allele gives Indeterminate, because it might carry the variant of interest.

With ``phenotypes`` the gene follows CPIC's "any listed variant present" rule and gives one
phenotype: RYR1 and CACNA1S (malignant hyperthermia susceptibility), MT-RNR1 (aminoglycoside
hearing loss, one mitochondrial allele) and CFTR (ivacaftor response). Their variant names
contain "+" (c.14364+1G>T), so only "/" separates alleles there.
"""

from __future__ import annotations

import re

from engine.genotype.calls import INDETERMINATE, PhenotypeCall, indeterminate
from engine.genotype.genes import AllelePresenceFile, GeneDefinition, allele_sort_key

_HLA_NAME = re.compile(r"^\*\d{2,3}(:\d{2,3}[A-Z]?)+$")
# Before 2010 HLA names had no colons: "*5701" is *57:01, "*570101" *57:01:01. Only 4, 6 or 8
# digits read as two-digit fields; other lengths had 3-digit fields and are not guessed at.
_PRE_2010_NAME = re.compile(r"^\*(\d{2})(\d{2})(\d{2})?(\d{2})?([A-Z]?)$")
_STATUS_WORDS = (
    "not detected|not present|non-carrier|noncarrier|detected|present|absent|positive|negative|pos|neg"
    "|carrier|heterozygous|homozygous"
)
_STATUS_AFTER = re.compile(rf"^(?P<allele>\S+?)\s*[:=-]?\s*\(?(?P<status>{_STATUS_WORDS})\)?$", re.IGNORECASE)
_STATUS_BEFORE = re.compile(rf"^(?P<status>{_STATUS_WORDS})\s*(?:for\s+|:\s*)(?P<allele>\S+)$", re.IGNORECASE)
_CARRIED = frozenset({"detected", "present", "positive", "pos", "carrier", "heterozygous", "homozygous"})
_STATUS_ONLY = re.compile(rf"^\(?(?:{_STATUS_WORDS})\)?$", re.IGNORECASE)
OTHER = "Other"  # PharmCAT's placeholder for "none of the alleles of interest"


def _statements(text: str) -> list[str]:
    """The "allele status" statements of a text: "*57:01 positive; *58:01 negative", "*57:01, positive"."""
    statements: list[str] = []
    for part in re.split(r"\s*[;,]\s*", text):
        if statements and _STATUS_ONLY.match(part):  # "*57:01, positive": the comma is not a list separator
            statements[-1] = f"{statements[-1]} {part}"
        else:
            statements.append(part)
    return statements


class AllelePresenceGene(GeneDefinition):
    kind = "allele presence"

    def __init__(self, spec: AllelePresenceFile, source: str):
        super().__init__(spec, source)
        self.alleles_of_interest = dict(
            sorted(spec.alleles_of_interest.items(), key=lambda item: allele_sort_key(item[0]))
        )
        self.fields = spec.fields
        self.uncertain = frozenset(spec.uncertain_alleles)
        self.known = {*self.alleles_of_interest, *spec.other_alleles, *self.uncertain, OTHER}
        self._by_fold = {name.casefold(): name for name in self.known}
        self.named = spec.phenotypes
        if self.named is not None:
            named = (self.named.present, self.named.uncertain, self.named.absent, INDETERMINATE)
            self.phenotypes = tuple(dict.fromkeys(name for name in named if name))
        else:
            statuses = [
                f"{allele} {status}" for allele in self.alleles_of_interest for status in ("positive", "negative")
            ]
            self.phenotypes = (*statuses, INDETERMINATE)
        letter = self.symbol.removeprefix("HLA-")
        # "B*57:01" for HLA-B: the locus letter of an HLA typing, dropped like the gene symbol.
        self._locus = re.compile(rf"^{re.escape(letter)}(?=\*)", re.IGNORECASE) if letter != self.symbol else None

    def known_alleles(self) -> tuple[str, ...]:
        return tuple(self.known)

    def _strip_gene(self, text: str) -> str:
        text = super()._strip_gene(text)
        return self._locus.sub("", text) if self._locus is not None else text

    def call_normalised(self, text: str, sex: str | None = None) -> PhenotypeCall:
        return self.reported(text) or self.call_as_written(text)

    def alternatives(self, text: str) -> list[str] | None:
        """None: ";" separates statuses here ("*57:01 positive; *58:01 negative"), and "/" lists every
        allele a typing could be, all counted as carried."""
        return None

    def split(self, text: str) -> list[str] | None:
        text = text.rsplit("#", 1)[-1]  # GL string with a namespace prefix: hla#3.33.0#HLA-B*08:01/...
        separators = r"[/+]" if self.fields else r"/"
        parts = [self._strip_gene(part.strip()) for part in re.split(separators, text)]
        return parts if all(parts) else None

    def _truncate(self, name: str) -> str | None:
        if name.casefold() == OTHER.casefold():
            return OTHER
        if self.fields is None:
            return self._by_fold.get(name.casefold())
        if old := _PRE_2010_NAME.match(name):
            name = "*" + ":".join(field for field in old.groups()[:4] if field) + old[5]
        if not _HLA_NAME.match(name):
            return None
        truncated = ":".join(name.split(":")[: self.fields])
        if truncated[-1].isalpha() and truncated[:-1] in self.alleles_of_interest:
            # "*57:01P" (a P group: *57:01's binding site, maybe another allele) or a suffix *57:01
            # itself never has: not *57:01 for certain, and not certainly another allele either.
            return None
        return self.allele_names.get(truncated, truncated)  # a withdrawn name of an allele (B*58:30)

    def call_alleles(self, alleles: list[str]) -> PhenotypeCall:
        names = [self._truncate(name) for name in alleles]
        if None in names:
            bad = ", ".join(original for original, name in zip(alleles, names, strict=True) if name is None)
            return indeterminate(self.symbol, "/".join(alleles), f"not a {self.symbol} allele name: {bad}")
        carried = sorted(set(names), key=allele_sort_key)  # type: ignore[arg-type]
        diplotype = "/".join(sorted(names, key=allele_sort_key))  # type: ignore[arg-type]
        if self.named is not None:
            return PhenotypeCall(self.symbol, diplotype, self._named_phenotype(set(carried)))
        keys = tuple(
            f"{allele} {'positive' if allele in carried else 'negative'}" for allele in self.alleles_of_interest
        )
        return PhenotypeCall(self.symbol, diplotype, "; ".join(keys), keys=keys)

    def _named_phenotype(self, carried: set[str]) -> str:
        assert self.named is not None
        if carried & set(self.alleles_of_interest):
            return self.named.present
        if carried & self.uncertain and self.named.uncertain:
            return self.named.uncertain
        return self.named.absent

    def reported(self, text: str) -> PhenotypeCall | None:
        """Statuses as a lab states them: "*57:01 positive", "HLA-B*57:01 detected", "B*57:01 absent"."""
        if self.named is not None:
            return super().reported(text)
        found: dict[str, str] = {}
        for part in _statements(self._strip_gene(" ".join(text.split()))):
            match = _STATUS_AFTER.match(part) or _STATUS_BEFORE.match(part)
            allele = self._truncate(self._strip_gene(match["allele"])) if match else None
            if allele not in self.alleles_of_interest:
                return None
            status = "positive" if match["status"].casefold() in _CARRIED else "negative"
            if found.setdefault(allele, status) != status:
                return indeterminate(self.symbol, None, f"{allele} is stated both positive and negative")
        keys = tuple(f"{allele} {status}" for allele, status in found.items())
        return PhenotypeCall(self.symbol, None, "; ".join(keys), keys=keys) if keys else None

    def answers(self, call: PhenotypeCall, keys: frozenset[str]) -> bool:
        """Whether ``call`` states every allele of interest that ``keys`` (a rule's lookup values) ask about.

        A lab may report one allele's status alone ("HLA-B*57:01 negative", the abacavir screen):
        that says nothing about *15:02, so for carbamazepine it is no result at all, not a result
        no recommendation fits (which would hide the card that asks for the test).
        """
        if self.named is not None or not call.definite:
            return True
        asked = {allele for allele in self.alleles_of_interest if self._statuses(allele) & keys}
        stated = {allele for allele in self.alleles_of_interest if self._statuses(allele) & set(call.keys)}
        return asked <= stated

    def together(self, calls: list[PhenotypeCall]) -> PhenotypeCall | None:
        """Several results' statuses as one call, or None if one allele is stated both ways.

        Labs often report one allele at a time ("HLA-B*57:01 negative" before abacavir,
        "HLA-B*15:02 negative" before carbamazepine); each says nothing about the other's allele,
        so together they are one result, not a disagreement.
        """
        if self.named is not None:
            return None
        found: dict[str, str] = {}
        for call in calls:
            for allele in self.alleles_of_interest:
                for status in ("positive", "negative"):
                    if f"{allele} {status}" in call.keys and found.setdefault(allele, status) != status:
                        return None
        keys = tuple(f"{allele} {found[allele]}" for allele in self.alleles_of_interest if allele in found)
        return PhenotypeCall(self.symbol, None, "; ".join(keys), keys=keys)

    @staticmethod
    def _statuses(allele: str) -> set[str]:
        return {f"{allele} positive", f"{allele} negative"}

    def representative_calls(self) -> list[PhenotypeCall]:
        if self.named is not None:
            return super().representative_calls()
        calls = []
        alleles = list(self.alleles_of_interest)
        for mask in range(2 ** len(alleles)):
            keys = tuple(
                f"{allele} {'positive' if mask >> index & 1 else 'negative'}" for index, allele in enumerate(alleles)
            )
            calls.append(PhenotypeCall(self.symbol, None, "; ".join(keys), keys=keys))
        return [*calls, indeterminate(self.symbol, None, "representative")]
