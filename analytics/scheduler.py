"""The scheduled loop: an analytics cycle every ``analytics_interval_hours``, beside the service.

The schedule continues from the last successful cycle recorded in the database, so restarting
the service neither skips a night nor runs the cycle again at every start. Each cycle runs in a
fresh child process: its memory (DuckDB, statsmodels) goes back to the system when it ends, and
it never holds the service's interpreter lock. The serving process itself imports none of
DuckDB, statsmodels or pandas (start-up time): the child imports them, and the schedule is
read from the status file each cycle publishes. Each cycle reads the rule files afresh; broken
rules, missing data or a failed cycle are logged and skipped (the cycle has rolled back, so no
strength moved), and the next one is tried on schedule.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
import traceback
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.executors.pool import ProcessPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from analytics.settings import AnalyticsSettings
from engine.documents.yamlsource import SourceError
from engine.rulebook.library import load_library
from engine.runtime import logs
from engine.runtime.cycle_status import read_status

if TYPE_CHECKING:
    from analytics.cycle import CycleResult

log = logging.getLogger(__name__)
JOB_ID = "analytics-cycle"


def last_success(settings: AnalyticsSettings) -> datetime | None:
    """When the last cycle that completed finished, from its status file (None: never, or no file)."""
    status = read_status(settings.paths().status)
    return status.last_success if status is not None else None


def next_due(settings: AnalyticsSettings, now: datetime) -> datetime:
    """The last success plus the interval, or now when overdue or never run."""
    last = last_success(settings)
    due = last + timedelta(hours=settings.analytics_interval_hours) if last else now
    return max(due, now)


def scheduled_cycle(settings: AnalyticsSettings) -> CycleResult | None:
    """One cycle as the scheduler runs it (in a child process): never raises, logs what happened.

    With replicas sharing a PostgreSQL (``PGX_LOOP_REPLAY_STORE``), only the replica holding the
    site's cycle lock runs it, and not again when another replica finished one less than half an
    interval ago (analytics/cycle_lease.py).
    """
    if not logging.getLogger().handlers:  # a spawned child starts with no logging set up
        logs.configure()
    if not settings.replay_store:
        return _cycle(settings)
    from analytics.cycle_lease import LeaseUnavailable, cycle_lease

    try:
        with cycle_lease(settings.replay_store) as held:
            if not held:
                log.info("analytics cycle skipped: another replica is running it")
                return None
            last = last_success(settings)
            if last and datetime.now(UTC) - last < timedelta(hours=settings.analytics_interval_hours / 2):
                log.info("analytics cycle skipped: a replica finished one at %s", last.isoformat(timespec="seconds"))
                return None
            return _cycle(settings)
    except LeaseUnavailable as exc:
        log.error("analytics cycle skipped: the replicas' cycle lock cannot be taken (%s); strengths unchanged", exc)
        return None


def _cycle(settings: AnalyticsSettings) -> CycleResult | None:
    from analytics.cycle import BadData, CycleBusy, NoData, publish_status, run_cycle
    from analytics.report.render import report_after_cycle

    started_at, started = datetime.now(UTC), time.perf_counter()
    try:
        library = load_library(settings.rules_dir)
    except SourceError as exc:
        message = f"the rule files do not load ({len(exc.problems)} problem(s)); strengths unchanged"
        log.error("analytics cycle skipped: %s", message)
        publish_status(settings.paths().status, None, started_at, started, "skipped", message)
        return None
    try:
        result = run_cycle(library, settings.paths())
    except (CycleBusy, NoData) as exc:
        log.warning("analytics cycle skipped: %s", exc)
        return None
    except BadData as exc:
        log.error("analytics cycle failed, strengths unchanged: %s", exc)
        return None
    except Exception as exc:
        # The message can quote data values (a DuckDB conversion error does): it goes to analysis_run, not the log.
        frames = "".join(traceback.format_tb(exc.__traceback__))
        log.error("analytics cycle failed with %s; it was rolled back, strengths unchanged; the message is in "
                  "analysis_run\n%s", type(exc).__name__, frames)  # fmt: skip
        return None
    report_after_cycle(settings, library)  # logs its own failure: the cycle stands either way
    changed = [e for e in result.estimates if e["tier_after"] != e["tier_before"] or e.get("proposed_tier")]
    log.info("analytics cycle %s: %d estimate(s), %d change(s) or proposal(s), strengths version %d",
             result.run_id, len(result.estimates), len(changed), result.snapshot_version)  # fmt: skip
    return result


def start_scheduler(settings: AnalyticsSettings) -> BackgroundScheduler | None:
    """Start the background schedule (None when the interval is 0: analytics off in this process)."""
    hours = settings.analytics_interval_hours
    if hours <= 0:
        return None
    child = {"mp_context": multiprocessing.get_context("spawn"), "max_tasks_per_child": 1}
    scheduler = BackgroundScheduler(executors={"default": ProcessPoolExecutor(1, pool_kwargs=child)}, timezone=UTC)
    first = next_due(settings, datetime.now(UTC))
    scheduler.add_job(
        scheduled_cycle,
        IntervalTrigger(hours=hours, start_date=first, timezone=UTC),
        args=[settings],
        id=JOB_ID,
        next_run_time=first,
        max_instances=1,  # and the cycle's own lock keeps other processes out too
        coalesce=True,
        misfire_grace_time=3600,
    )
    scheduler.start()
    log.info("analytics every %g h; next cycle at %s", hours, first.isoformat(timespec="seconds"))
    return scheduler


def stop_scheduler(scheduler: BackgroundScheduler) -> None:
    """Stop the schedule without waiting for a cycle in progress: its child process is stopped too.

    A cycle commits all or nothing, so a stopped one changed no strength; it is overdue at the next
    start and runs then.
    """
    scheduler.shutdown(wait=False)
    for child in multiprocessing.active_children():  # the pool's worker, idle or not: this process starts no other
        child.terminate()
