"""Properties that must hold for every input, not just the examples: hypothesis searches for a counterexample.

- Diplotype parsing: notation and allele order never change a call; an allele the gene file does
  not define always gives Indeterminate; no text makes the phenotyper raise or invent a phenotype.
- Rule matching: published strengths never move a tier outside the recommendation's floor and
  ceiling; the order of the draft orders never changes what matches.
- Request limits: the fast nesting-depth check agrees with the real depth of any JSON.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.decision.orders import Order
from engine.decision.rules import TIER_RANK, TIERS
from engine.decision.strengths import Strength
from engine.genotype.calls import INDETERMINATE
from engine.genotype.phenotyper import call_diplotype
from engine.genotype.results import GeneResult
from engine.rulebook.library import Library
from hooks.protocol.limits import Limits, TooComplex
from tests.test_oracle import oracle_rows

STAR_GENES = ("CYP2C19", "CYP2C9", "CYP2D6", "CYP3A5", "NUDT15", "TPMT")
FAST = settings(max_examples=150, deadline=None)


def _oracle_diplotypes() -> list[tuple[str, str]]:
    return [(gene, row["diplotype"]) for gene in STAR_GENES for row in oracle_rows(gene)]


ORACLE = _oracle_diplotypes()


@st.composite
def notations(draw, gene: str, first: str, second: str) -> str:
    """One diplotype written the ways labs write it: order, gene prefix, spacing, case."""
    if draw(st.booleans()):
        first, second = second, first
    prefix = draw(st.sampled_from(["", gene, gene.lower(), gene + " "]))
    repeat = prefix.strip() if prefix and draw(st.booleans()) else ""
    pad = st.sampled_from(["", " ", "  "])
    return f"{draw(pad)}{prefix}{first}{draw(pad)}/{draw(pad)}{repeat}{second}{draw(pad)}"


@FAST
@given(data=st.data(), case=st.sampled_from(ORACLE))
def test_notation_and_allele_order_never_change_a_call(library, data, case):
    gene_symbol, diplotype = case
    gene = library.genes[gene_symbol]
    canonical = call_diplotype(gene, diplotype)
    first, second = diplotype.split("/")
    written = data.draw(notations(gene_symbol, first, second))
    call = call_diplotype(gene, written)
    assert (call.phenotype, call.activity_score) == (canonical.phenotype, canonical.activity_score), written


@FAST
@given(
    data=st.data(),
    gene_symbol=st.sampled_from(STAR_GENES),
    unknown=st.one_of(
        st.integers(min_value=200, max_value=10**6).map(lambda n: f"*{n}"),
        st.text(alphabet="*ABCXYZxyz0123456789.-+>", min_size=1, max_size=8),
    ),
)
def test_an_allele_the_gene_file_does_not_define_is_indeterminate(library, data, gene_symbol, unknown):
    gene = library.genes[gene_symbol]
    known = gene.allele_function
    spelled = gene.canonical_allele(unknown.strip(), known) in known or gene.reader.defined(unknown.strip())
    if spelled or "/" in unknown or "|" in unknown or not unknown.strip():
        return  # a defined allele in any spelling (or not an allele name at all): not this property's business
    defined = data.draw(st.sampled_from(sorted(known)))
    pair = [defined, unknown]
    if data.draw(st.booleans()):
        pair.reverse()
    call = call_diplotype(gene, "/".join(pair))
    assert call.phenotype == INDETERMINATE, (pair, call)
    assert call.reason


@FAST
@given(gene_symbol=st.sampled_from(sorted(set(STAR_GENES) | {"HLA-B", "VKORC1", "DPYD", "SLCO1B1"})), text=st.text())
def test_no_text_makes_the_phenotyper_raise_or_invent_a_phenotype(library, gene_symbol, text):
    gene = library.genes[gene_symbol]
    call = call_diplotype(gene, text)
    assert call.phenotype in gene.phenotypes or call.phenotype == INDETERMINATE
    if call.phenotype != INDETERMINATE:
        # A definite call must come from a diplotype the gene file can read back the same way.
        assert call_diplotype(gene, call.diplotype or text).phenotype == call.phenotype


def _order(rule, index: int) -> Order:
    drug = rule.drugs[0]
    return Order(f"MedicationRequest/draft-{index}", frozenset(drug.rxnorm[:1]), drug.name)  # name-only drugs: none


@st.composite
def patients(draw, library: Library):
    """A few ordered drugs, results (or none) for their genes, and published strengths for any key."""
    rules = draw(st.lists(st.sampled_from(library.rules), min_size=1, max_size=3, unique_by=lambda rule: rule.id))
    results = {}
    for gene_symbol in sorted({gene for rule in rules for gene in rule.gene_list}):
        calls = library.genes[gene_symbol].representative_calls()
        call = draw(st.one_of(st.none(), st.sampled_from(calls)))
        if call is not None:
            results[gene_symbol] = GeneResult(call)
    return rules, results


@FAST
@given(data=st.data())
def test_strengths_never_move_a_tier_outside_its_bounds(library, data):
    rules, results = data.draw(patients(library))
    orders = [_order(rule, index) for index, rule in enumerate(rules)]
    unbounded = library.match(orders, results)
    strengths = {
        (match.rule.id, match.key): Strength(
            rule=match.rule.id,
            phenotype=match.key,
            tier=data.draw(st.sampled_from(TIERS)),
            evidence="property test",
            run_id="test",
            decided_at="2026-12-01T00:00:00Z",
        )
        for match in unbounded
        if match.recommendation is not None
    }
    for match in library.match(orders, results, strengths=strengths):
        if match.recommendation is None:
            continue
        floor, ceiling = match.recommendation.bounds
        assert TIER_RANK[floor] <= TIER_RANK[match.tier] <= TIER_RANK[ceiling], match.rule.id


@FAST
@given(data=st.data())
def test_the_order_of_draft_orders_never_changes_what_matches(library, data):
    rules, results = data.draw(patients(library))
    orders = [_order(rule, index) for index, rule in enumerate(rules)]
    shuffled = data.draw(st.permutations(orders))

    def outcome(matches):
        return sorted((m.order.reference, m.rule.id, m.key, m.tier, m.kind) for m in matches)

    assert outcome(library.match(orders, results)) == outcome(library.match(shuffled, results))


def _json_values():
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(alphabet='{}[]"\\ab/\n'))
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(alphabet='{}[]"\\k', max_size=3), inner, max_size=3)
        ),
        max_leaves=30,
    )


def _depth(value) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(value=_json_values())
def test_the_fast_depth_check_agrees_with_the_real_depth(value):
    parsed = json.loads(json.dumps(value))
    depth = _depth(value)
    Limits(10**6, max(depth, 1), 10).check_depth(parsed)
    if depth > 1:
        with pytest.raises(TooComplex):
            Limits(10**6, depth - 1, 10).check_depth(parsed)
