"""``pgx-loop serve`` and ``pgx-loop demo``: run the CDS Hooks service and the scheduled learning loop."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from analytics.settings import AnalyticsSettings
from engine.rulebook.library import Library
from hooks.settings import Settings
from pgx_loop.options import library_or_exit, rules_option

DEMO_PERSONS = 500_000
DEMO_SEED = 1
DEMO_FHIR_SERVERS = "https://launch.smarthealthit.org/v/r4/fhir"


workers_option = click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes answering requests (each keeps its own event log segment and watches rules and strengths).",
)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--admin-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve the operator endpoints (/status, /metrics, /docs, /openapi.json, /reports) on this port only; "
    "--port then serves /cds-services, /healthz and /readyz. Default: everything on --port.",
)
@workers_option
@rules_option
def serve(host: str, port: int, admin_port: int | None, workers: int, rules_dir: Path | None) -> None:
    """Run the CDS Hooks service, and the analytics cycle on its schedule (PGX_LOOP_ANALYTICS_INTERVAL_HOURS)."""
    # Workers are separate processes that read their settings from the environment.
    if rules_dir:
        os.environ["PGX_LOOP_RULES_DIR"] = str(rules_dir)
    if admin_port is not None:
        if admin_port == port:
            raise click.BadParameter("must differ from --port", param_hint="--admin-port")
        os.environ["PGX_LOOP_ADMIN_PORT"] = str(admin_port)
    settings = Settings()
    _check_configuration(settings)  # first: a configuration error is reported before anything slow is loaded
    library = library_or_exit(settings.rules_dir)  # refuse to start on a broken rule set, with file:line messages
    _serve(settings, host, port, workers, library)


def _check_configuration(settings: Settings) -> None:
    """The trusted issuers (auth on) or the FHIR server list (auth off), as ``create_app`` checks them."""
    from hooks.protocol.fhir_servers import parse_list
    from hooks.security.auth import AuthConfigError, build_verifier

    try:
        if settings.auth == "jwt":
            build_verifier(settings).replay.close()
        else:
            parse_list(settings.fhir_server_list, "PGX_LOOP_FHIR_SERVERS")
    except (AuthConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _serve(settings: Settings, host: str, port: int, workers: int = 1, library: Library | None = None) -> None:
    if workers > 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _share_metrics(settings)  # before prometheus_client is imported: it opens its files at import
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from analytics.scheduler import start_scheduler, stop_scheduler
    from engine.runtime.logs import configure, log_config
    from hooks.app import create_app
    from hooks.http.client_deadline import PROTOCOL as CLIENT_DEADLINE_PROTOCOL
    from hooks.protocol.fhir_servers import FhirServerConfigError
    from hooks.security.auth import AuthConfigError

    configure()  # JSON logs from here on (the scheduler logs before uvicorn sets up its own)
    try:
        # Built here even when workers build their own: a configuration error stops the start, with
        # its reason, rather than leaving a service that answers nothing but 401s.
        app = create_app(settings, library if workers == 1 else None)  # one worker: the rules loaded above
    except (AuthConfigError, FhirServerConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    # One scheduler, in this (supervising) process, however many workers answer requests.
    scheduler = start_scheduler(AnalyticsSettings(rules_dir=settings.rules_dir))
    # uvicorn's own access log stays off: the service's (PGX_LOOP_ACCESS_LOG) names routes, not paths with ids.
    config = uvicorn.Config(
        app if workers == 1 else "hooks.app:create_app",
        factory=workers > 1,
        workers=workers,
        host=host,
        port=port,
        http=CLIENT_DEADLINE_PROTOCOL,  # requests must arrive within PGX_LOOP_CLIENT_TIMEOUT_SECONDS
        log_level="info",
        access_log=False,
        log_config=log_config(),
        # A worker answers the supervisor's pings only once imported; on a busy host that took over
        # uvicorn's 5 s and the worker was killed and respawned, again and again.
        timeout_worker_healthcheck=30,
    )
    sockets = [config.bind_socket()]
    if settings.admin_port is not None:
        admin = uvicorn.Config(app, host=host, port=settings.admin_port, log_config=None)
        sockets.append(admin.bind_socket())
    try:
        with _stopped_by_signal_exits_cleanly():
            if workers == 1:
                uvicorn.Server(config).run(sockets=sockets)
            else:
                Multiprocess(config, sockets=sockets).run()
    finally:
        if scheduler is not None:
            stop_scheduler(scheduler)


@contextmanager
def _stopped_by_signal_exits_cleanly() -> Iterator[None]:
    """Make a stop by SIGTERM or Ctrl-C an ordinary exit (status 0) once the server has shut down.

    uvicorn, after its graceful shutdown, raises again the signal that stopped it. With the default
    handlers that killed the process on SIGTERM (a container's stop) before the scheduler stopped and
    the exit handlers ran, and turned Ctrl-C into Click's "Aborted!". The handlers set here take
    that one signal and give the default behaviour back, so a second Ctrl-C still interrupts.
    """
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in stops}

    def restore(*_: object) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    for sig in stops:
        signal.signal(sig, restore)
    try:
        yield
    finally:
        restore()


def _share_metrics(settings: Settings) -> None:
    """Let every worker's metrics add up in /metrics: prometheus_client's multiprocess mode, in a fresh directory."""
    directory = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or settings.var_dir / "metrics")
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # values of an earlier run's processes must not count
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _demo_database(settings: AnalyticsSettings) -> None:
    """Build the synthetic demo database unless one with OMOP data is already there."""
    from analytics.cycle import status
    from analytics.data.store import connect
    from analytics.simulation.simulate import Truth, simulate
    from engine.runtime.identifiers import Identifiers, load_or_create_key

    if status(settings.database).get("person"):
        click.echo(f"Using the existing database {settings.database}.")
        return
    click.echo(
        f"Building a demo database in {settings.database}: {DEMO_PERSONS:,} synthetic persons (seed {DEMO_SEED})"
    )
    library = library_or_exit(settings.rules_dir)
    con = connect(settings.database)
    try:
        identifiers = Identifiers(load_or_create_key(settings.key_path))
        simulate(con, library, persons=DEMO_PERSONS, seed=DEMO_SEED, truth=Truth(), identifiers=identifiers)
    finally:
        con.close()


def _demo_cycle(settings: AnalyticsSettings) -> None:
    from analytics.cycle import CycleBusy, run_cycle

    library = library_or_exit(settings.rules_dir)
    try:
        result = run_cycle(library, settings.paths())
    except CycleBusy as exc:
        click.echo(f"Skipping the first cycle: {exc}")
        return
    click.echo(f"\nOne analytics cycle ({result.seconds:.1f} s), strengths version {result.snapshot_version}:")
    for e in result.estimates:
        estimate = f"HR {e['hr']:.2f} ({e['ci_low']:.2f}-{e['ci_high']:.2f})" if e["hr"] else "no estimate"
        change = f"{e['tier_before']} -> {e['proposed_tier'] or e['tier_after']}"
        click.echo(
            f"  {e['rule']:22} {e['phenotype']:26} {e['events']:>4} events  {estimate:24} {change:22} {e['action']}"
        )
    click.echo(f"  (full result: pgx-loop analyze prints it as JSON; {json.dumps(result.run_id)} is this run)")
    from analytics.report.render import report_after_cycle

    folder = report_after_cycle(settings, library)
    if folder is not None:
        click.echo(f"  Its outcome report: {folder / 'report.html'}")


def _warn_auth_off() -> None:
    lines = [
        "AUTHENTICATION IS OFF (demo)",
        "Any client can call /cds-services without a JWT.",
        "Never serve real patient data like this: use `pgx-loop serve`",
        "with PGX_LOOP_TRUSTED_ISSUERS and PGX_LOOP_PUBLIC_BASE_URL.",
    ]
    width = max(map(len, lines))
    box = ["+" + "-" * (width + 2) + "+", *(f"| {line:<{width}} |" for line in lines), "+" + "-" * (width + 2) + "+"]
    click.secho("\n".join(box), err=True, fg="red", bold=True)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@workers_option
def demo(host: str, port: int, workers: int) -> None:
    """Build the demo database if needed, run one learning cycle, then serve with the scheduler on.

    Authentication is off: the demo's curl commands carry no EHR-signed JWT.
    """
    os.environ["PGX_LOOP_AUTH"] = "off"  # for worker processes too, which read the environment
    # The FHIR fallback may only reach listed servers: the public SMART R4 sandbox the CDS Hooks
    # sandbox uses, unless the user lists their own.
    os.environ.setdefault("PGX_LOOP_FHIR_SERVERS", DEMO_FHIR_SERVERS)
    settings = Settings()
    _warn_auth_off()
    analytics = AnalyticsSettings()
    library = library_or_exit(settings.rules_dir)
    _demo_database(analytics)
    _demo_cycle(analytics)
    examples = settings.rules_dir.parent / "examples"
    base = f"http://{host}:{port}"
    post = f"curl -s -X POST {base}/cds-services"
    click.echo(
        f"""
pgx-loop demo: {len(library.rules)} rule(s), {len(library.genes)} gene definition(s), library {library.version}

  Discovery:
    curl -s {base}/cds-services

  A clopidogrel order for a CYP2C19 poor metabolizer (order-select), expecting a critical card:
    {post}/pgx-order-select -H 'Content-Type: application/json' -d @{examples}/order-select-poor-metabolizer.json

  An intermediate metabolizer (order-sign); if the cycle above escalated that group, the card says
  its alert level comes from this hospital's own outcome data:
    {post}/pgx-order-sign -H 'Content-Type: application/json' -d @{examples}/order-sign-intermediate-metabolizer.json

  The same drug for a normal metabolizer, expecting no card:
    {post}/pgx-order-select -H 'Content-Type: application/json' -d @{examples}/order-select-normal-metabolizer.json

  The learning loop:
    .venv/bin/pgx-loop strength show                 # published tiers, and proposals awaiting approval
    .venv/bin/pgx-loop strength approve N --by you   # apply proposal #N; the service picks it up within seconds
    .venv/bin/pgx-loop strength rollback --by you    # undo the last change
    curl -s {base}/status/strengths

  Outcome reports (one after every cycle; small counts suppressed): {base}/reports/  (newest: {base}/reports/latest)

  The FHIR fallback (a request without prefetch) only reaches PGX_LOOP_FHIR_SERVERS:
    {settings.fhir_servers}

  Cards and feedback land in var/events/*.jsonl; the next cycle ingests them. API docs: {base}/docs
  Ctrl-C stops the service.
"""
    )
    _serve(settings, host, port, workers, library)
