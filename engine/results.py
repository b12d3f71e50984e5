"""A patient's reported PGx results -> one interpreted result per gene.

Labs and EHRs report a diplotype, a phenotype, or both, sometimes several times over. This
module turns those reports into the single phenotype call each gene's rules are looked up by,
and refuses to pick a side when the reports disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from engine.genes import INDETERMINATE, GeneDefinition
from engine.phenotyper import PhenotypeCall, call_diplotype


@dataclass(frozen=True, slots=True)
class ReportedResult:
    """One result as reported, before interpretation."""

    gene: str
    diplotype: str | None = None
    phenotype: str | None = None
    effective: str | None = None


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


def normalise_phenotype(gene: GeneDefinition, text: str) -> str | None:
    """The gene's own phenotype term for a reported text (``"poor metabolizer"``), if any."""
    wanted = " ".join(text.split()).casefold()
    prefix = gene.symbol.casefold() + " "
    wanted = wanted.removeprefix(prefix)
    for term in gene.phenotypes:
        if term.casefold() == wanted:
            return term
    return None


def compatible(reported: str | None, called: str) -> bool:
    """Whether a reported phenotype agrees with a called one.

    LOINC's answer list has no "Likely" terms, so a lab coding "Poor metabolizer" for a diplotype
    CPIC calls "Likely Poor Metabolizer" agrees with it (CPIC applies the same recommendation).
    """
    if reported is None:
        return False
    return reported.removeprefix("Likely ") == called.removeprefix("Likely ")


def interpret_one(gene: GeneDefinition, report: ReportedResult) -> GeneResult:
    """Interpret a single report: the diplotype if there is one, else the reported phenotype."""
    reported = normalise_phenotype(gene, report.phenotype) if report.phenotype else None
    if report.diplotype:
        call = call_diplotype(gene, report.diplotype)
        result = GeneResult(call, report.effective, report.phenotype)
        if report.phenotype and call.definite and not compatible(reported, call.phenotype):
            stated = GeneResult(
                PhenotypeCall(gene.symbol, None, reported or INDETERMINATE), report.effective, report.phenotype
            )
            return _disagreement(gene.symbol, (result, stated))
        return result
    if reported is None:
        reason = f"reported phenotype {report.phenotype!r} is not a {gene.symbol} phenotype term"
        return GeneResult(
            PhenotypeCall(gene.symbol, None, INDETERMINATE, reason=reason), report.effective, report.phenotype
        )
    return GeneResult(PhenotypeCall(gene.symbol, None, reported), report.effective, report.phenotype)


def _disagreement(gene: str, results: tuple[GeneResult, ...]) -> GeneResult:
    call = PhenotypeCall(gene, None, INDETERMINATE, reason="the results on file disagree")
    newest = max((result.effective or "" for result in results), default="") or None
    return GeneResult(call, newest, conflicting=results)


def interpret(genes: Mapping[str, GeneDefinition], reports: Iterable[ReportedResult]) -> dict[str, GeneResult]:
    """One result per gene we define. Disagreeing reports make the gene Indeterminate, with both named."""
    by_gene: dict[str, list[GeneResult]] = {}
    for report in reports:
        gene = genes.get(report.gene)
        if gene is not None:
            by_gene.setdefault(gene.symbol, []).append(interpret_one(gene, report))
    return {symbol: _merge(results) for symbol, results in by_gene.items()}


def _merge(results: list[GeneResult]) -> GeneResult:
    # Prefer calls made from a diplotype (they carry the most information), then the newest.
    ranked = sorted(
        results, key=lambda result: (result.call.diplotype is not None, result.effective or ""), reverse=True
    )
    definite = [result for result in ranked if result.call.definite]
    if not definite:
        return ranked[0]
    best = definite[0]
    if all(compatible(result.call.lookup_key, best.call.lookup_key) for result in definite):
        return best
    return _disagreement(best.gene, tuple(definite))
