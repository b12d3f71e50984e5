"""The engine alone: microseconds per evaluation, and the batch phenotyper's throughput.

An evaluation is what the service does per hook call once the request is parsed: find the genes
the rules watching the clopidogrel order need, read those of the 10 PGx Observations of
examples/order-select-poor-metabolizer.json, phenotype them, match the order against the rules
and build the card. The yardstick, run in the same process,
is orjson parsing that same request body: a fixed, machine-dependent unit of work, so the ratio
travels between machines better than the microseconds do. Both are CPU time of this thread,
measured in alternated rounds.

    python bench/engine_eval.py [--lines 50000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.decision.cards import CardContext  # noqa: E402
from engine.decision.orders import Order  # noqa: E402
from engine.genotype.phenotyper import _call_cached  # noqa: E402
from engine.rulebook.library import load_library  # noqa: E402
from engine.runtime.identifiers import Identifiers  # noqa: E402
from hooks.fhir.fhir_pgx import ResultReader  # noqa: E402


def per_call(fn, seconds: float = 0.5) -> float:
    """Mean microseconds of CPU (this thread's) per call of ``fn`` over about ``seconds`` of CPU.

    CPU time rather than wall time: on a shared machine the time other processes take the CPU
    must not count.
    """
    calls, started = 0, time.thread_time()
    while time.thread_time() - started < seconds:
        for _ in range(200):
            fn()
        calls += 200
    return (time.thread_time() - started) / calls * 1e6


def alternated(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """``per_call`` of each of ``fns`` in turn, ``rounds`` times: machine noise spreads over all of them."""
    found: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            found[name].append(per_call(fn))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7, help="alternated rounds of yardstick and evaluations")
    args = parser.parse_args()

    body = (ROOT / "examples" / "order-select-poor-metabolizer.json").read_bytes()
    request = orjson.loads(body)
    library = load_library(ROOT / "rules")
    reader = ResultReader(library.genes, library.rules_by_code)
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    order = Order(f"MedicationRequest/{draft['id']}", frozenset({"309362"}))
    patient = request["context"]["patientId"]
    context = CardContext(patient, request["context"]["userId"], Identifiers(b"k" * 32).stable_uuid)
    prefetch = list(request["prefetch"].values())

    def evaluate() -> list:
        genes = library.genes_for([order])
        results = library.interpret(reader.read(prefetch, patient, genes))
        return [library.card(m, context) for m in library.match([order], results) if m.shows_card]

    def evaluate_cold() -> list:
        _call_cached.cache_clear()
        return evaluate()

    assert evaluate()[0]["indicator"] == "critical"
    times = alternated({"yardstick": lambda: orjson.loads(body), "warm": evaluate, "cold": evaluate_cold}, args.rounds)
    yardstick, warm, cold = (statistics.median(times[name]) for name in ("yardstick", "warm", "cold"))
    warm_ratios = [w / y for w, y in zip(times["warm"], times["yardstick"], strict=True)]
    cold_ratios = [c / y for c, y in zip(times["cold"], times["yardstick"], strict=True)]
    print(
        f"engine evaluation (10 Observations -> phenotypes -> rule -> card), "
        f"{len(library.rules)} rule(s), {len(library.genes)} gene(s) loaded; CPU time, medians of "
        f"{args.rounds} alternated rounds (ratio range over rounds)"
    )
    print(f"  yardstick: orjson.loads of the {len(body)} byte request  {yardstick:7.1f} us")
    print(
        f"  evaluation, phenotype cache warm                    {warm:7.1f} us  "
        f"({statistics.median(warm_ratios):.2f} x yardstick, {min(warm_ratios):.2f}-{max(warm_ratios):.2f})"
    )
    print(
        f"  evaluation, phenotype cache cleared each time       {cold:7.1f} us  "
        f"({statistics.median(cold_ratios):.2f} x yardstick, {min(cold_ratios):.2f}-{max(cold_ratios):.2f})"
    )
    met = statistics.median(warm_ratios) <= 2
    print(f"  target <= 2 x yardstick (warm): {'met' if met else 'NOT met'}")

    gene = library.genes["CYP2C19"]
    alleles = [*gene.allele_function, "*99", "*2A"]
    pairs = list(itertools.combinations_with_replacement(alleles, 2))
    rng = random.Random(7)
    lines = "gene,diplotype\n" + "".join(
        f"CYP2C19,{a}/{b}\n" if rng.random() < 0.5 else f"CYP2C19,{b}/{a}\n"
        for a, b in (rng.choice(pairs) for _ in range(args.lines))
    )
    command = [sys.executable, "-m", "pgx_loop.cli", "phenotype"]
    started = time.perf_counter()
    single = subprocess.run([*command, "CYP2C19", "*1/*2"], capture_output=True, check=True, cwd=ROOT)
    one = time.perf_counter() - started
    started = time.perf_counter()
    batch = subprocess.run([*command, "--batch"], input=lines.encode(), capture_output=True, check=True, cwd=ROOT)
    many = time.perf_counter() - started
    assert single.stdout and batch.stdout.count(b"\n") == args.lines + 1
    print(f"pgx-loop phenotype --batch, {args.lines} CSV lines")
    print(f"  one diplotype (process start, rules load, one call)  {one:6.2f} s")
    print(
        f"  {args.lines:<6d} lines                                        {many:6.2f} s  ({many / one:.2f} x one call)"
    )


if __name__ == "__main__":
    main()
