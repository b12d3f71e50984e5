"""Hostile YAML in the rules folder: refused as ``file:line: message``, in bounded time and memory.

Seen before the fix (issue 10): a billion-laughs file made the running service grow ~40 MB/s
through hot reload, and a recursive alias crashed ``rules check`` with a bare RecursionError.
"""

from __future__ import annotations

import itertools
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hooks.app import create_app
from hooks.settings import Settings
from tests.conftest import REPOSITORY, RULES
from tests.fhirdata import genotype, hook_request

# Nine levels of nine aliases: 9**9 (387 million) values once expanded, from 10 short lines.
LETTERS = "abcdefghi"
LAUGHS = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n" for previous, name in itertools.pairwise(LETTERS)
)
RECURSIVE = "id: loop\ntitle: &self [*self]\n"
MEMORY_LIMIT = 2 * 1024**3  # a `rules check` needs ~150 MB; the unfixed loader blew through this


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    return target


def rules_check(directory: Path) -> subprocess.CompletedProcess[str]:
    def limit_memory() -> None:  # so that an unfixed loader fails this test instead of the machine
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    return subprocess.run(
        [sys.executable, "-m", "pgx_loop.cli", "rules", "check", str(directory)],
        capture_output=True, text=True, cwd=REPOSITORY, timeout=120, preexec_fn=limit_memory,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (LAUGHS, 1, "anchors and aliases are not allowed (write the value out in full)"),
        (RECURSIVE, 2, "anchors and aliases are not allowed (write the value out in full)"),
        ("id: x\nalleles:\n  - *2\n", 3, "aliases are not allowed (write star alleles in quotes"),
        ("a: " + "[" * 500 + "]" * 500 + "\n", 1, "nested more than 64 levels deep"),
        ("id: x\ntitle: caf\xe9\n", 2, "not UTF-8 text"),
        ("id: x\ntitle: \x01\n", 2, "YAML: unacceptable character #x0001"),
    ],
    ids=["billion laughs", "recursive alias", "unquoted star allele", "deep nesting", "latin-1", "control char"],
)
def test_rules_check_names_file_and_line_for_hostile_yaml(rules: Path, text: str, line: int, message: str):
    hostile = rules / "hostile.yaml"
    hostile.write_bytes(text.encode("latin-1") if "caf" in text else text.encode())

    started = time.monotonic()
    done = rules_check(rules)

    assert done.returncode == 2  # as for any problem in the rules (pgx_loop.options.library_or_exit)
    assert f"{hostile}:{line}: {message}" in done.stderr
    assert "Traceback" not in done.stderr and time.monotonic() - started < 60


def resident_mb() -> float:
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_hot_reload_refuses_billion_laughs_keeps_serving_and_does_not_grow(rules: Path, tmp_path: Path):
    settings = Settings(rules_dir=rules, var_dir=tmp_path / "var", rules_poll_seconds=0.05)
    request = hook_request(genotypes=[genotype("CYP2C19", "*2/*2")])
    with TestClient(create_app(settings)) as client:
        version = client.get("/status/rules").json()["version"]
        before = resident_mb()
        for name, text in (("laughs.yaml", LAUGHS), ("recursive.yaml", RECURSIVE)):
            (rules / name).write_text(text)
            deadline = time.monotonic() + 30
            while name not in str(client.get("/status/rules").json().get("last_error")):
                assert time.monotonic() < deadline, "the reload never reported the file"
                time.sleep(0.05)
            status = client.get("/status/rules").json()
            assert status["version"] == version
            assert any(f"{name}:" in p and "aliases are not allowed" in p for p in status["last_error"]["problems"])
            (rules / name).unlink()
        time.sleep(0.5)  # several more polls: nothing keeps running after the files are gone
        cards = client.post("/cds-services/pgx-order-select", json=request).json()["cards"]
        assert cards[0]["summary"].startswith("CYP2C19 Poor Metabolizer")  # the last good rules, still served
        assert resident_mb() - before < 100
