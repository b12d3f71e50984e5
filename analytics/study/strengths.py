"""Published strengths: versions in the database, the file the service reads, and their history.

Every change of a tier (automatic, approved, rolled back) produces a new snapshot version in
``strength_snapshot`` and a row in the append-only ``strength_audit``. The newest version is
written to the snapshot file atomically (temporary file, fsync, rename), so the service sees the
old set or the new one, never a mix. The file is rewritten from the database on every cycle, so
a crash between the two heals itself.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from analytics.data.store import first_row, transaction
from analytics.study.policy import Decision
from engine.decision.learning import Group
from engine.decision.rules import Recommendation, Rule, Tier
from engine.decision.strengths import EMPTY, Snapshot, Strength
from engine.runtime.published import replace_atomically


class StrengthError(ValueError):
    """A strength command that cannot be carried out; the message says why."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def latest(con: duckdb.DuckDBPyConnection) -> Snapshot:
    row = first_row(con, "SELECT body FROM strength_snapshot ORDER BY version DESC LIMIT 1")
    return Snapshot.model_validate_json(row[0]) if row else EMPTY


def publish(con: duckdb.DuckDBPyConnection, strengths: list[Strength], run_id: str | None) -> Snapshot:
    """Record a new snapshot version (inside the caller's transaction)."""
    version = latest(con).version + 1
    ordered = sorted(strengths, key=lambda s: (s.rule, s.phenotype))
    snapshot = Snapshot(version=version, created=now(), strengths=tuple(ordered))
    con.execute(
        "INSERT INTO strength_snapshot VALUES (?, ?, ?, ?)",
        [version, snapshot.created, run_id, snapshot.model_dump_json()],
    )
    return snapshot


def write_file(con: duckdb.DuckDBPyConnection, path: Path) -> Snapshot:
    """Write the newest snapshot to ``path`` atomically; the service picks it up from there."""
    snapshot = latest(con)
    replace_atomically(path, snapshot.model_dump_json(indent=2).encode())
    return snapshot


def default_recommendation(rule: Rule, phenotype: str) -> Recommendation | None:
    """The recommendation a group's tier starts from: the default population's, for its phenotype."""
    for recommendation in rule.recommendations:
        if recommendation.population == rule.default_population and phenotype in recommendation.values_for(
            rule.gene_list[0], True
        ):
            return recommendation
    return None


def current_tier(rule: Rule, group: Group, snapshot: Snapshot) -> tuple[Tier, Tier, Tier]:
    """(tier, floor, ceiling) of a learning group now: the published tier, else the rule file's."""
    recommendation = default_recommendation(rule, group.phenotypes[0])
    if recommendation is None:
        raise StrengthError(f"{rule.id}: no recommendation for {group.phenotypes[0]} in the default population")
    floor, ceiling = recommendation.bounds
    published = snapshot.table().get((rule.id, group.phenotypes[0]))
    return (published.tier if published else recommendation.tier), floor, ceiling


def with_group(snapshot: Snapshot, rule: Rule, group: Group, tier: Tier, evidence: str, run_id: str) -> list[Strength]:
    """The snapshot's strengths with every phenotype of ``group`` set to ``tier``."""
    kept = [s for s in snapshot.strengths if not (s.rule == rule.id and s.phenotype in group.phenotypes)]
    decided = now()
    return kept + [Strength(rule=rule.id, phenotype=p, tier=tier, evidence=evidence, run_id=run_id, decided_at=decided)
                   for p in group.phenotypes]  # fmt: skip


def rolled_back(con: duckdb.DuckDBPyConnection, rule: Rule, group: Group) -> bool:
    """Whether a person's last word on this group was a rollback (rather than an approval).

    A rolled-back change must not come straight back at the next cycle: until someone approves a
    change for the group again, the loop only proposes.
    """
    row = first_row(
        con,
        "SELECT action FROM strength_audit WHERE rule = ? AND phenotype IN (SELECT unnest(?::VARCHAR[])) "
        "AND action IN ('rollback', 'approved') ORDER BY audit_id DESC LIMIT 1",
        [rule.id, [group.label, *group.phenotypes]],
    )
    return bool(row) and row[0] == "rollback"


def settle_proposal(
    con: duckdb.DuckDBPyConnection, run_id: str, rule: Rule, group: Group, decision: Decision, evidence: dict,
    propose: bool,
) -> str:  # fmt: skip
    """Record, keep, supersede or withdraw the group's pending proposal; the action as the audit names it.

    A change the same as the one already waiting keeps that proposal (its number stays valid);
    a different one supersedes it; when the newest evidence no longer calls for any change,
    the waiting proposal is withdrawn.
    """
    pending = first_row(
        con,
        "SELECT proposal_id, tier_before, tier_after FROM strength_proposal "
        "WHERE rule = ? AND phenotype = ? AND status = 'pending'",
        [rule.id, group.label],
    )
    if not (propose and decision.changes):
        if pending and decision.action not in ("insufficient data", "off"):
            _close(con, pending[0], "withdrawn")
            return f"{decision.action} (proposal #{pending[0]} withdrawn)"
        return decision.action
    action = f"propose {decision.action}"
    if pending and tuple(pending[1:]) == (decision.tier_before, decision.tier_after):
        return f"{action} (still pending as #{pending[0]})"
    if pending:
        _close(con, pending[0], "superseded")
    con.execute(
        "INSERT INTO strength_proposal VALUES "
        "(nextval('proposal_ids'), ?, now(), ?, ?, ?, ?, ?, ?, 'pending', NULL, NULL)",
        [
            run_id,
            rule.id,
            group.label,
            decision.tier_before,
            decision.tier_after,
            decision.reason,
            json.dumps(evidence),
        ],
    )
    return action


def _close(con: duckdb.DuckDBPyConnection, proposal_id: int, status: str) -> None:
    con.execute(
        "UPDATE strength_proposal SET status = ?, decided_at = now() WHERE proposal_id = ?", [status, proposal_id]
    )


def audit(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str | None,
    rule: str,
    phenotype: str,
    tier_before: str | None,
    tier_after: str | None,
    action: str,
    reason: str,
    approved_by: str | None,
    data_snapshot: dict | None = None,
    evidence: dict | None = None,
    snapshot_version: int | None = None,
) -> None:
    con.execute(
        """INSERT INTO strength_audit VALUES (nextval('audit_ids'), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [run_id, now(), rule, phenotype, tier_before, tier_after, action, reason, approved_by,
         json.dumps(data_snapshot) if data_snapshot is not None else None,
         json.dumps(evidence) if evidence is not None else None, snapshot_version],
    )  # fmt: skip


def approve(con: duckdb.DuckDBPyConnection, proposal_id: int, by: str, rules: dict[str, Rule]) -> Snapshot:
    """Apply a pending proposal: a new snapshot with its tier, audited with the approver."""
    row = first_row(
        con,
        "SELECT run_id, rule, phenotype, tier_before, tier_after, reason, evidence, status FROM strength_proposal "
        "WHERE proposal_id = ?",
        [proposal_id],
    )
    if row is None:
        raise StrengthError(f"no proposal {proposal_id}")
    run_id, rule_id, label, before, after, reason, evidence, status = row
    if status != "pending":
        raise StrengthError(f"proposal {proposal_id} is {status}, not pending")
    rule = rules.get(rule_id)
    group = next((g for g in (rule.learning.groups if rule and rule.learning else ()) if g.label == label), None)
    if rule is None or group is None:
        raise StrengthError(f"proposal {proposal_id}: rule {rule_id} no longer has the group {label}")
    with transaction(con):
        snapshot = latest(con)
        tier_now, _, _ = current_tier(rule, group, snapshot)
        if tier_now != before:
            raise StrengthError(f"proposal {proposal_id} was made for tier {before}; the tier is now {tier_now}")
        text = json.loads(evidence).get("summary", reason) if evidence else reason
        new = publish(con, with_group(snapshot, rule, group, after, text, run_id), run_id)
        con.execute(
            "UPDATE strength_proposal SET status = 'approved', decided_at = ?, decided_by = ? WHERE proposal_id = ?",
            [now(), by, proposal_id],
        )
        audit(con, run_id=run_id, rule=rule_id, phenotype=label, tier_before=before, tier_after=after,
              action="approved", reason=reason, approved_by=by, snapshot_version=new.version)  # fmt: skip
    return new


def rollback(con: duckdb.DuckDBPyConnection, to_version: int | None, by: str) -> Snapshot:
    """Publish an earlier snapshot's strengths again, as a new version (the previous one by default)."""
    current = latest(con)
    target = to_version if to_version is not None else current.version - 1
    if target < 0 or target >= current.version:
        raise StrengthError(f"cannot roll back to version {target}; the current version is {current.version}")
    body = first_row(con, "SELECT body FROM strength_snapshot WHERE version = ?", [target]) if target else None
    if target and body is None:
        raise StrengthError(f"no snapshot version {target}")
    earlier = Snapshot.model_validate_json(body[0]) if body else EMPTY
    with transaction(con):
        new = publish(con, list(earlier.strengths), None)
        before, after = current.table(), earlier.table()
        for key in sorted(set(before) | set(after)):
            old, restored = before.get(key), after.get(key)
            if (old and old.tier) != (restored and restored.tier):
                audit(con, run_id=None, rule=key[0], phenotype=key[1], tier_before=old.tier if old else None,
                      tier_after=restored.tier if restored else None, action="rollback",
                      reason=f"rolled back to snapshot version {target}", approved_by=by,
                      snapshot_version=new.version)  # fmt: skip
    return new
