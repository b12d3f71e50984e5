"""Hot reload: edits to the rules directory are picked up; a broken edit never is."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hooks.app import create_app
from hooks.settings import Settings
from tests.conftest import RULES
from tests.fhirdata import genotype, hook_request

RULE = "cyp2c19-clopidogrel.yaml"


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    (target / "genes").mkdir(parents=True)
    shutil.copy(RULES / "genes" / "CYP2C19.yaml", target / "genes")
    shutil.copy(RULES / RULE, target)
    return target


@pytest.fixture
def live(rules_dir: Path, tmp_path: Path):
    settings = Settings(rules_dir=rules_dir, var_dir=tmp_path / "var", rules_poll_seconds=0.05)
    with TestClient(create_app(settings)) as client:
        yield client


def summary(client) -> str:
    response = client.post(
        "/cds-services/pgx-order-select", json=hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    )
    return response.json()["cards"][0]["summary"]


def wait_for(client, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get("/status/rules").json()
        if predicate(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"status never matched: {status}")


def test_an_edit_is_served_without_a_restart(live, rules_dir):
    before = live.get("/status/rules").json()
    assert summary(live).startswith("CYP2C19 Poor Metabolizer: avoid clopidogrel")
    text = (rules_dir / RULE).read_text()
    text = text.replace("avoid {drug}; use prasugrel", "do not use {drug}; use prasugrel", 1)
    text = text.replace("Poor Metabolizer: avoid clopidogrel; use", "Poor Metabolizer: do not use clopidogrel; use")
    (rules_dir / RULE).write_text(text)
    status = wait_for(live, lambda s: s["version"] != before["version"])
    assert status["reloads"] == 1 and "last_error" not in status
    assert summary(live).startswith("CYP2C19 Poor Metabolizer: do not use clopidogrel")


def test_a_broken_edit_is_reported_and_the_last_good_rules_keep_serving(live, rules_dir):
    before = live.get("/status/rules").json()
    good = (rules_dir / RULE).read_text()
    (rules_dir / RULE).write_text(good.replace("classification: Strong", "classification: Very strong", 1))
    status = wait_for(live, lambda s: "last_error" in s)
    assert status["version"] == before["version"] and status["failures"] == 1
    [problem] = status["last_error"]["problems"]
    # Relative to the rules directory: /status is open, and the host's layout is not for its callers.
    assert problem.startswith(f"{RULE}:") and "classification" in problem
    assert str(rules_dir) not in str(status) and str(rules_dir.resolve()) not in str(status)
    assert summary(live).startswith("CYP2C19 Poor Metabolizer: avoid clopidogrel")  # still the last good rules
    (rules_dir / RULE).write_text(good + "\n# fixed\n")
    status = wait_for(live, lambda s: "last_error" not in s)
    assert status["failures"] == 1


def test_a_new_rule_file_is_picked_up(live, rules_dir):
    before = live.get("/status/rules").json()
    text = (rules_dir / RULE).read_text().replace("id: cyp2c19-clopidogrel", "id: cyp2c19-clopidogrel-trial")
    text = text.replace('      - "309362"', '      - "999001"').replace('      - "32968"', '      - "999002"')
    for code in ("213169", "749198", "174742"):
        text = text.replace(f'      - "{code}"', f'      - "99{code}"')
    text = text[: text.index("\nexamples:")] + "\n"
    (rules_dir / "cyp2c19-clopidogrel-trial.yaml").write_text(text)
    status = wait_for(live, lambda s: s["rules"] == before["rules"] + 1)
    assert "last_error" not in status
