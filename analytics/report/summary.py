"""The plain-language summary at the top of a report: what changed since the last one, and why.

It is written only from what the report shows: counts come from the suppressed tables (a hidden
count stays hidden here too) and a local estimate only when the tables show it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analytics.report.view_model import ReportView, RuleView, Table

if TYPE_CHECKING:
    from analytics.report.data import TierChange


def _cell(table: Table, row: str, column: str) -> str:
    index = table.columns.index(column)
    return next(r[index] for r in table.rows if r[0] == row)


def _new(view: ReportView, change: TierChange) -> bool:
    """Whether a change is news in this report: decided by this cycle, or by a person since the previous one.

    (Run ids, not times, tell cycles apart: a cycle's timestamps are those of its transaction's start.)
    """
    run, previous = view.data.run, view.data.previous
    if change.action in ("approved", "rollback"):
        return previous is None or change.decided_at > previous.started_at
    return run is not None and change.run_id == run.run_id


def _changes(view: ReportView, rule: RuleView) -> list[str]:
    lines = []
    for change in rule.data.history:
        if not _new(view, change):
            continue
        if change.tier_before != change.tier_after:
            who = f" by {change.by}" if change.by else ""
            rule_file = "the rule file's tier"
            move = f"{change.tier_before or rule_file} → {change.tier_after or rule_file}"
            lines.append(f"{rule.data.drug}, {change.group}: {move} ({change.action}{who}), because {change.reason}.")
        elif change.action.startswith("propose") and "still pending" not in change.action:
            lines.append(f"{rule.data.drug}, {change.group}: proposed {change.action.removeprefix('propose ')}, "
                         f"because {change.reason}; it waits for a pharmacist's approval.")  # fmt: skip
    return lines


def _estimates(view: ReportView, rule: RuleView) -> list[str]:
    lines = []
    previous = view.data.previous
    for group, row in rule.shown_estimates.items():
        text = f"{rule.data.drug}, {group}: this site's HR {row.hr:.2f} ({row.ci_low:.2f} to {row.ci_high:.2f})"
        before = next((e for e in rule.data.trend if previous and e.run_id == previous.run_id and e.group == group),
                      None)  # fmt: skip
        if before is not None and before.hr is not None and min(before.events, before.reference_events) > view.min_cell:
            text += f", was {before.hr:.2f} at the previous cycle"
        lines.append(text + f"; combined with the literature {row.posterior_hr:.2f}.")
    return lines


def _alerts(rule: RuleView) -> str | None:
    cards = rule.alerts[0]
    if not cards.rows:
        return None
    shown = _cell(cards, "Total", "cards shown")
    accepted = _cell(cards, "Total", "accepted of answered")
    if shown == "0":
        return f"{rule.data.drug}: no cards shown yet."
    if shown == "*":
        return f"{rule.data.drug}: a small number of cards shown (not given: small counts are suppressed)."
    answered = "" if accepted == "*" else f"; {accepted} of those answered were accepted"
    return f"{rule.data.drug}: {shown} cards shown in all{answered}."


def summarise(view: ReportView) -> list[str]:
    """Short sentences, most important first."""
    data = view.data
    if data.run is None:
        return ["No analytics cycle has completed yet: there are no estimates to report."]
    lines = []
    changes = [line for rule in view.rules for line in _changes(view, rule)]
    since = "since the previous cycle" if data.previous else "in the first cycle"
    lines += changes or [f"No tier changed and nothing was proposed {since}."]
    pending = [f"#{p.proposal_id} ({rule.data.drug}, {p.group}: {p.tier_before} → {p.tier_after})"
               for rule in view.rules for p in rule.data.proposals]  # fmt: skip
    if pending:
        lines.append("Waiting for a pharmacist's approval: " + ", ".join(pending) + ".")
    for rule in view.rules:
        lines += _estimates(view, rule)
        if (alerts := _alerts(rule)) is not None:
            lines.append(alerts)
    without = _cell(view.quality[0], "Total", "without a result")
    lines.append(f"Persons without any genotype result: {without}.")
    return lines
