"""What ``pgx-loop rules check`` warns about: the library loads, but something deserves a look.

- A rule without worked examples: nothing proves it does what its author meant.
- A tier masked by a published strength: the learning loop has set this rule and result to
  another tier, so an edit of the tier in the file does not change what prescribers see.
- Fewer negative controls than calibration needs: they are estimated, but never calibrate.
"""

from __future__ import annotations

from pathlib import Path

from engine.decision.lookup import RuleLookup
from engine.decision.matching import effective_tier
from engine.decision.strengths import Snapshot
from engine.documents.yamlsource import Problem, load_yaml
from engine.genotype.results import GeneResult
from engine.rulebook.library import Library


def rule_warnings(library: Library, snapshot: Snapshot) -> list[Problem]:
    """Every warning for the library, given the strengths the service serves."""
    warnings = []
    for rule in library.rules:
        if not rule.examples:
            line = load_yaml(Path(rule.source)).line_of(("id",))
            message = (
                "warning: no examples; add one for each kind of result, so that `pgx-loop rules check` "
                "proves the rule gives the card you meant"
            )
            warnings.append(Problem(rule.source, line, message))
        learning = rule.learning
        if learning and 0 < len(learning.negative_controls) < learning.policy.min_negative_controls:
            line = load_yaml(Path(rule.source)).line_of(("learning", "negative_controls"))
            message = (
                f"warning: {len(learning.negative_controls)} negative controls listed; calibration needs at least "
                f"{learning.policy.min_negative_controls} estimable (min_negative_controls), so it will never apply"
            )
            warnings.append(Problem(rule.source, line, message))
    return warnings + masked_tiers(library, snapshot)


def masked_tiers(library: Library, snapshot: Snapshot) -> list[Problem]:
    """Recommendations whose file tier differs from the tier a published strength makes the service show."""
    table = snapshot.table()
    warnings = []
    for (rule_id, key), strength in sorted(table.items()):
        lookup = library.lookups.get(rule_id)
        if lookup is None or not lookup.rule.single_gene:
            continue
        for index, spec_tier, shown in _shown_tiers(library, lookup, key, table):
            if shown == spec_tier:
                continue
            line = load_yaml(Path(lookup.rule.source)).line_of(("recommendations", index, "tier"))
            warnings.append(
                Problem(
                    lookup.rule.source,
                    line,
                    f"warning: tier {spec_tier} for {key} is masked by a published strength: the service shows "
                    f"{shown}, set from local evidence (strengths version {snapshot.version}, run {strength.run_id}, "
                    f"{strength.decided_at}); see `pgx-loop strength show` and `pgx-loop strength history`",
                )
            )
    return warnings


def _shown_tiers(library: Library, lookup: RuleLookup, key: str, table) -> list[tuple[int, str, str]]:
    """(recommendation index, file tier, tier shown) for each default-population recommendation keyed ``key``."""
    rule = lookup.rule
    gene = rule.gene_list[0]
    found = {}
    for call in library.genes[gene].representative_calls():
        results = {gene: GeneResult(call)}
        compiled = lookup.find(results, rule.default_population)
        if compiled is None or compiled.index in found or compiled.key(results, True) != key:
            continue
        shown, _ = effective_tier(rule, compiled.spec, key, table)
        found[compiled.index] = (compiled.index, compiled.spec.tier, shown)
    return list(found.values())
