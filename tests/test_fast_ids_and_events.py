"""The cheaper card ids, event times and event lines are exactly those of the straightforward code.

Card and suggestion uuids are keyed hashes that clients and analytics rely on being stable across
versions; here they are recomputed from their parts the plain way (BLAKE2b, then ``uuid.UUID``) for
every card the real rule library's worked examples show, with and without a user and carried fields.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from datetime import UTC, datetime, timedelta
from random import Random

import orjson
import pytest

from engine.decision.cards import CardContext
from engine.decision.orders import Order
from engine.decision.populations import SYSTEMS, PatientFacts
from engine.genotype.results import ReportedResult
from engine.rulebook.library import default_rules_dir, load_library
from engine.runtime.identifiers import RANDOM_BATCH, Identifiers, random_hex, random_uuid
from hooks.answering.eventlog import EventLog
from hooks.answering.service import iso_time

KEY = b"site-secret-" * 3


def reference_uuid(*parts: str) -> str:
    """The derivation as first written: BLAKE2b keyed by SHA-256(key) over the parts, version 8, RFC variant."""
    mac = hashlib.blake2b("\x1f".join(("uuid", *parts)).encode(), key=hashlib.sha256(KEY).digest(), digest_size=16)
    digest = bytearray(mac.digest())
    digest[6] = (digest[6] & 0x0F) | 0x80
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


def reference_pseudonym(value: str) -> str:
    return hashlib.blake2b(value.encode(), key=hashlib.sha256(KEY).digest(), digest_size=16).hexdigest()


def example_matches(library):
    """Every card the worked examples of every rule show, on a draft order with carried fields."""
    order = Order("MedicationRequest/draft-é-1", frozenset(), "the draft", {"encounter": {"reference": "E/1"}})
    found = []
    for lookup in library.lookups.values():
        rule = lookup.rule
        for example in rule.examples:
            results = library.interpret(
                (ReportedResult(gene, diplotype=text) for gene, text in example.genotype.items()), example.sex
            )
            conditions = frozenset((SYSTEMS.get(c.system, c.system), c.code) for c in example.conditions)
            facts = PatientFacts(conditions, example.age, example.sex)
            codes = frozenset({example.order}) if example.order else frozenset()
            drug_order = Order(order.reference, codes, example.order_text, order.carried)
            found += [m for m in library.match([drug_order], results, facts) if m.rule.id == rule.id and m.shows_card]
    return found


def test_card_and_suggestion_uuids_are_the_plain_derivation_for_every_example_card():
    library = load_library(default_rules_dir())
    matches = example_matches(library)
    assert len({m.rule.id for m in matches}) >= 10  # the walk reached the library
    ids = Identifiers(KEY)
    suggestions = 0
    for user in ("Practitioner/p-1", None):
        context = CardContext("Patient/p\x1fé", user, ids.stable_uuid_of)
        for match in matches:
            card = library.card(match, context)
            rule = match.rule
            parts = ("card", context.patient_id, match.order.reference, rule.id, rule.version, match.kind,
                     match.key, match.tier)  # fmt: skip
            expected = reference_uuid(*parts)
            assert card["uuid"] == expected
            assert ids.stable_uuid(*parts) == expected
            # The whole card is the same whichever way the caller derives its ids.
            plain = CardContext(context.patient_id, user, lambda joined: reference_uuid(*joined.split("\x1f")))
            assert orjson.dumps(library.card(match, plain)) == orjson.dumps(card)
            template = library.card_templates[(rule.id, match.index, match.drug.name)]
            names = [swap.name for swap in template.swaps if swap.name not in {n for n, _ in match.withheld}]
            got = [s["uuid"] for s in card.get("suggestions", [])]
            assert got == [reference_uuid("suggestion", expected, name) for name in names]
            suggestions += len(got)
    assert suggestions > 0


def test_pseudonyms_and_random_uuids_keep_their_form():
    ids = Identifiers(KEY)
    for value in ("Patient/1", "MedicationRequest/é", "", "x" * 300):
        assert ids.pseudonym(value) == reference_pseudonym(value)
    for _ in range(200):
        text = random_uuid()
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_random_ids_are_never_repeated_nor_shared_with_a_forked_child():
    drawn = [random_hex() for _ in range(5 * RANDOM_BATCH)]  # several refills of the pool
    assert len(set(drawn)) == len(drawn) and all(len(text) == 32 and int(text, 16) >= 0 for text in drawn)
    random_hex()  # the pool now holds ids the parent has not handed out yet
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        os.write(write, "".join(random_hex() for _ in range(RANDOM_BATCH)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read, "rb") as pipe:
        text = pipe.read().decode()
    in_child = {text[start : start + 32] for start in range(0, len(text), 32)}
    in_parent = {random_hex() for _ in range(RANDOM_BATCH)}
    assert len(in_child) == RANDOM_BATCH and not in_child & in_parent


def test_event_time_is_datetimes_isoformat():
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rng = Random(13)
    samples = [0, 1_000, 999, 1_764_667_000_000_000_000, 1_764_667_000_000_001_999, 4_102_444_799_999_999_999]
    samples += [rng.randrange(0, 4_102_444_800 * 10**9) for _ in range(2000)]
    samples += [s - s % 10**9 for s in samples[:200]]  # whole seconds: no microseconds written
    for ns in samples:
        assert iso_time(ns) == (epoch + timedelta(microseconds=ns // 1000)).isoformat(), ns


@pytest.mark.parametrize("count", [1, 3])
def test_event_lines_are_one_compact_json_object_each(tmp_path, count):
    events = [{"event_id": random_uuid(), "n": n, "text": "a\nb é", "shadow": False} for n in range(count)]

    async def run():
        log = EventLog(tmp_path, sync="interval")
        await log.append(events)
        await log.close()
        return log

    log = asyncio.run(run())
    assert log.path.read_bytes() == b"".join(orjson.dumps(event) + b"\n" for event in events)
    assert log.events == count
