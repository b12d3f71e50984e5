"""Rules and strengths change while load runs, on two workers: no request fails, each answer is one rule set.

Rule deploys here are what the README recommends for changing several files at once: a new
directory, then the `rules` symlink switched to it. Two rules (clopidogrel, citalopram) fire on
the same order; their card labels carry the rule set's mark, so an answer mixing two rule sets
would show two marks. Strength snapshots are published at the same time, as the learning loop
does (written aside, then renamed).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from pathlib import Path

import httpx

from engine.decision.strengths import Snapshot, Strength
from hooks.answering.eventlog import read_events
from tests.conftest import RULES
from tests.fhirdata import genotype, hook_request, medication_request
from tests.live_server import LiveServer

RULE_FILES = ("cyp2c19-clopidogrel.yaml", "cyp2c19-citalopram.yaml")
MARK = re.compile(r"\[set (\d+)\]")
CITALOPRAM = "2556"


def rule_set(root: Path, number: int) -> Path:
    directory = root / f"rules-{number}"
    (directory / "genes").mkdir(parents=True)
    shutil.copy(RULES / "genes" / "CYP2C19.yaml", directory / "genes")
    for name in RULE_FILES:
        text = (RULES / name).read_text()
        text, changed = re.subn(r'(\n  label: "[^"]*)"', rf'\1 [set {number}]"', text, count=1)
        assert changed == 1
        (directory / name).write_text(text)
    return directory


def deploy(link: Path, target: Path) -> None:
    staging = link.with_name(".rules-next")
    staging.unlink(missing_ok=True)
    staging.symlink_to(target)
    os.replace(staging, link)


def publish(path: Path, version: int, tier: str) -> None:
    strength = Strength(
        rule="cyp2c19-clopidogrel",
        phenotype="Poor Metabolizer",
        tier=tier,
        evidence=f"test snapshot {version}",
        run_id=f"run-{version}",
        decided_at="2026-12-01T00:00:00Z",
    )
    snapshot = Snapshot(version=version, created="2026-12-01T00:00:00Z", strengths=(strength,))
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(snapshot.model_dump_json())
    os.replace(staging, path)


def order_request() -> dict:
    orders = [medication_request("clop"), medication_request("cital", code=CITALOPRAM)]
    body = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")], orders=orders)
    body["context"]["selections"] = ["MedicationRequest/clop", "MedicationRequest/cital"]
    return body


class Load:
    def __init__(self, base: str, threads: int = 8):
        self.base = base
        self.answers: list[tuple[str, list[dict]]] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self._stop.is_set():
                body = order_request()
                try:
                    response = client.post("/cds-services/pgx-order-select", json=body)
                except httpx.TransportError as exc:
                    self.failures.append(type(exc).__name__)
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text[:200]}")
                    continue
                self.answers.append((body["hookInstance"], response.json()["cards"]))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def marks(cards: list[dict]) -> set[str]:
    return {MARK.search(card["source"]["label"]).group(1) for card in cards}


def clopidogrel_tier(cards: list[dict]) -> str:
    return next(card["indicator"] for card in cards if card["source"]["topic"]["code"] == "cyp2c19-clopidogrel")


def test_rule_deploys_and_strength_publications_under_load_fail_nothing_and_reach_every_worker(tmp_path):
    link = tmp_path / "rules"
    sets = [rule_set(tmp_path, number) for number in (1, 2)]
    deploy(link, sets[0])
    strengths = tmp_path / "strengths.json"
    publish(strengths, 1, "warning")
    env = {
        "PGX_LOOP_RULES_DIR": str(link),
        "PGX_LOOP_STRENGTHS_FILE": str(strengths),
        "PGX_LOOP_RULES_POLL_SECONDS": "0.05",
    }
    with LiveServer(tmp_path / "var", workers=2, env=env) as server:
        load = Load(server.base)
        for change in range(2, 10):  # ends on rule set 2 (sets[1]) and strengths version 9 ("critical")
            time.sleep(0.3)
            deploy(link, sets[change % 2])
            publish(strengths, change, "critical" if change % 2 else "warning")
        time.sleep(1.0)  # every worker polls every 50 ms
        load.stop()

        assert load.failures == []
        assert len(load.answers) > 100
        mixed = [cards for _, cards in load.answers if len(marks(cards)) != 1]
        assert mixed == [], "an answer mixed two rule sets"
        assert {mark for _, cards in load.answers for mark in marks(cards)} == {"1", "2"}

        final = []
        for _ in range(60):  # a new connection each time, so both workers answer
            body = order_request()
            with httpx.Client(base_url=server.base, timeout=10) as client:
                final.append((body["hookInstance"], client.post("/cds-services/pgx-order-select", json=body).json()))
    assert all(marks(answer["cards"]) == {"2"} for _, answer in final)
    assert all(clopidogrel_tier(answer["cards"]) == "critical" for _, answer in final)

    final_instances = {instance for instance, _ in final}
    segments = {}
    for path in (tmp_path / "var" / "events").glob("events-*.jsonl"):
        for event in read_events(path):
            if event.get("hook_instance") in final_instances:
                segments.setdefault(path.name, set()).add((event["library_version"], event["strengths_version"]))
    assert len(segments) == 2, "both workers should have answered the final requests"
    assert all(versions == {next(iter(versions))} for versions in segments.values())
    assert len({version for versions in segments.values() for version in versions}) == 1
    assert next(iter(next(iter(segments.values()))))[1] == 9
