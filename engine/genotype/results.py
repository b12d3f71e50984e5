"""A patient's reported PGx results -> one interpreted result per gene.

Labs and EHRs report a diplotype, a phenotype, or both, sometimes several times over. This
module turns those reports into the single phenotype call each gene's rules are looked up by,
and refuses to pick a side when the reports disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from engine.genotype.activity_score import ActivityScoreGene
from engine.genotype.allele_presence import AllelePresenceGene
from engine.genotype.calls import PhenotypeCall, indeterminate, loose_phenotype
from engine.genotype.genes import MOST_CHARACTERS, GeneDefinition
from engine.genotype.phenotyper import call_diplotype


@dataclass(frozen=True, slots=True)
class ReportedResult:
    """One result as reported, before interpretation.

    ``other_spellings``: the same diplotype as the result's other codings give it (a FHIR value's
    displays and codes beside its text). They are not read instead of ``diplotype``, only
    checked against it: one that gives another call makes the result Indeterminate.
    """

    gene: str
    diplotype: str | None = None
    phenotype: str | None = None
    activity_score: str | None = None
    effective: str | None = None
    other_spellings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GeneResult:
    """The interpreted result for one gene, with what the card should say about its origin.

    When the results on file disagree, ``call`` is Indeterminate and ``conflicting`` holds each
    of the disagreeing results, so that the card can show them side by side.
    """

    call: PhenotypeCall
    effective: str | None = None
    reported_phenotype: str | None = None
    conflicting: tuple[GeneResult, ...] = ()

    @property
    def gene(self) -> str:
        return self.call.gene


def _reported_call(gene: GeneDefinition, report: ReportedResult) -> PhenotypeCall:
    """The call a stated phenotype or activity score stands for (Indeterminate if unrecognised)."""
    longest = max(len(report.phenotype or ""), len(report.activity_score or ""))
    if longest > MOST_CHARACTERS:  # as for a genotype: not read (an HLA status list is read statement by statement)
        return indeterminate(
            gene.symbol, None, f"a reported result of {longest} characters, longer than any lab writes one"
        )
    if report.activity_score and isinstance(gene, ActivityScoreGene):
        call = gene.reported_score(report.activity_score)
        if call is not None:
            return call
    call = gene.reported(report.phenotype) if report.phenotype else None
    if call is not None:
        return call
    stated = report.phenotype or report.activity_score
    return indeterminate(gene.symbol, None, f"reported result {stated!r} is not a {gene.symbol} phenotype term")


def compatible(stated: PhenotypeCall, called: PhenotypeCall) -> bool:
    """Whether a stated result agrees with a called one."""
    if not stated.definite:
        return False
    if stated.activity_score and called.activity_score:
        return stated.activity_score == called.activity_score
    called_keys = {loose_phenotype(key) for key in called.keys}
    return all(loose_phenotype(key) in called_keys for key in stated.keys)


def interpret_one(gene: GeneDefinition, report: ReportedResult, sex: str | None = None) -> GeneResult:
    """Interpret a single report: the diplotype if there is one, else the stated phenotype or score.

    ``sex`` ("female", "male", or None if unknown) is needed to read X-linked genes (G6PD).
    """
    stated_text = report.phenotype or report.activity_score
    if report.diplotype:
        call = call_diplotype(gene, report.diplotype, sex)
        result = GeneResult(call, report.effective, stated_text)
        contradicting = _contradicting_spelling(gene, report, call, sex)
        if contradicting is not None:
            return _disagreement(gene.symbol, (result, contradicting))
        if stated_text and call.definite:
            stated = _reported_call(gene, report)
            if not compatible(stated, call):
                return _disagreement(gene.symbol, (result, GeneResult(stated, report.effective, stated_text)))
        return result
    return GeneResult(_reported_call(gene, report), report.effective, stated_text)


def _contradicting_spelling(
    gene: GeneDefinition, report: ReportedResult, call: PhenotypeCall, sex: str | None
) -> GeneResult | None:
    """The first other spelling of a report's diplotype that reads as a different definite call, if any."""
    if not call.definite:
        return None
    for spelling in report.other_spellings:
        other = call_diplotype(gene, spelling, sex)
        if other.definite and not (compatible(other, call) and compatible(call, other)):
            return GeneResult(other, report.effective)
    return None


def _disagreement(gene: str, results: tuple[GeneResult, ...]) -> GeneResult:
    call = indeterminate(gene, None, "the results on file disagree")
    newest = max((result.effective or "" for result in results), default="") or None
    return GeneResult(call, newest, conflicting=results)


def interpret(
    genes: Mapping[str, GeneDefinition], reports: Iterable[ReportedResult], sex: str | None = None
) -> dict[str, GeneResult]:
    """One result per gene we define. Disagreeing reports make the gene Indeterminate, with both named."""
    by_gene: dict[str, list[GeneResult]] = {}
    for report in reports:
        gene = genes.get(report.gene)
        if gene is not None:
            by_gene.setdefault(gene.symbol, []).append(interpret_one(gene, report, sex))
    return {symbol: _merge(results, genes.get(symbol)) for symbol, results in by_gene.items()}


def _merge(results: list[GeneResult], gene: GeneDefinition | None = None) -> GeneResult:
    if len(results) == 1:  # the usual case: nothing to rank or reconcile
        return results[0]
    # A result that disagrees with itself takes part with each of its sides: being Indeterminate, it
    # would otherwise be passed over, and another result on file would settle what it left open.
    sides = [side for result in results for side in (result.conflicting or (result,))]
    # Prefer calls made from a diplotype (they carry the most information), then the newest.
    ranked = sorted(sides, key=lambda result: (result.call.diplotype is not None, result.effective or ""), reverse=True)
    definite = [result for result in ranked if result.call.definite]
    if not definite:
        return ranked[0]
    best = definite[0]
    if all(compatible(result.call, best.call) for result in definite):
        return best
    if isinstance(gene, AllelePresenceGene):
        together = gene.together([result.call for result in definite])
        if together is not None:  # statuses of different alleles (an abacavir and a carbamazepine screen)
            newest = max((result.effective or "" for result in definite), default="") or None
            return GeneResult(together, newest)
    return _disagreement(best.gene, tuple(definite))
