"""Keys used together share a hash slot; the cluster guard of the tests catches those that do
not."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from libs.common.keys import Keys
from tests.support.slots import CrossSlotError, check_one_slot, transaction_keys

KEYS = Keys("t1:")


def slot(key: str) -> int:
    return key_slot(key.encode())


@pytest.mark.parametrize(
    ("operation", "keys"),
    [
        ("hub transcript MULTI", [KEYS.hub_transcript("c1"), KEYS.hub_transcript_entries("c1")]),
        (
            "stream_append.lua",
            [
                KEYS.hub_stream("billing"),
                KEYS.hub_seen("e1", "billing"),
                KEYS.hub_trimmed("billing"),
            ],
        ),
        (
            "claim_acknowledgement.lua",
            [
                KEYS.outbound_acknowledged("c1", "receipt", "sms", "+15550001"),
                KEYS.outbound_acknowledgements("sms", "+15550001", 491_000),
            ],
        ),
        ("chat_mailbox_append.lua", [KEYS.chat_mailbox("v1"), KEYS.chat_reply("v1", "cmd1")]),
        ("count_incident.lua", [KEYS.incident_window("k"), KEYS.incident_active("k")]),
        (
            "commit_placement.lua",
            [KEYS.conversation_by_thread("sms:+1"), KEYS.router_seen("sms:+1", "e1")],
        ),
        (
            "claim_reference.lua",
            [KEYS.conversation_sequence(), KEYS.conversation_reference("c1")],
        ),
        (
            "touch_conversation.lua, create_conversation.lua and the hub's transcript",
            [KEYS.conversation("c1"), KEYS.hub_transcript("c1"), KEYS.sla_contact("c1")],
        ),
        (
            "note_conversation.lua, absorb_profile.lua, retire_profile.lua, touch_profile.lua",
            [KEYS.customer("u1"), KEYS.customer_open("u1"), KEYS.customer_history("u1")],
        ),
        (
            "SLA clock and timers MULTI, timer claims and releases",
            [
                KEYS.sla_clocks(3, 7),
                KEYS.sla_clocks(3, 100),
                KEYS.sla_clock(3, "c1", "first_response"),
                KEYS.sla_open_counts(3),
                KEYS.sla_due(3),
                KEYS.sla_claimed(3),
            ],
        ),
        (
            "assign.lua and track_conversation.lua",
            [
                KEYS.hub_offer_sequence("west"),
                KEYS.hub_conversation("west", "c1"),
                KEYS.hub_open("west", "billing"),
                KEYS.hub_waiting("west", "sales"),
                KEYS.hub_agent("west", "ann"),
                KEYS.hub_offer("west", "o1"),
            ],
        ),
        (
            "hub incident link MULTI",
            [KEYS.hub_incident_linked("west", "i1"), KEYS.hub_incidents("west", "q")],
        ),
    ],
)
def test_keys_used_together_share_a_slot(operation: str, keys: list[str]) -> None:
    assert len({slot(k) for k in keys}) == 1, operation


def test_entities_spread_over_slots() -> None:
    """Untagged and per-entity keys of different entities land on different slots."""
    conversations = {slot(KEYS.hub_transcript(f"c{i}")) for i in range(50)}
    queues = {slot(KEYS.hub_stream(f"q{i}")) for i in range(50)}
    threads = {slot(KEYS.conversation_by_thread(f"sms:+1555000{i}")) for i in range(50)}
    customers = {slot(KEYS.customer(f"u{i}")) for i in range(50)}
    assert len(conversations) > 40
    assert len(queues) > 40
    assert len(threads) > 40
    assert len(customers) > 40


def test_assignment_groups_spread_over_slots() -> None:
    """Each assignment group's push assignment has its own slot."""
    groups = [f"desk-{i}" for i in range(50)]
    assert len({slot(KEYS.hub_offer_sequence(group)) for group in groups}) > 40
    assert slot(KEYS.hub_waiting("west", "q")) != slot(KEYS.hub_waiting("east", "q"))


def test_sla_partitions_spread_over_slots() -> None:
    """Each partition's SLA state has its own slot, so partitions spread over the primaries."""
    assert len({slot(KEYS.sla_due(p)) for p in range(64)}) == 64
    assert slot(KEYS.sla_clocks(0, 5)) != slot(KEYS.sla_clocks(1, 5))


def test_the_guard_rejects_keys_of_two_slots() -> None:
    with pytest.raises(CrossSlotError):
        check_one_slot("a script", [KEYS.hub_stream("a"), KEYS.hub_stream("b")])
    check_one_slot("a script", [KEYS.hub_stream("a"), KEYS.hub_trimmed("a")])


def test_the_guard_reads_the_keys_of_queued_commands() -> None:
    stack: list[tuple[tuple[object, ...], dict[str, object]]] = [
        ((b"MULTI",), {}),
        (("HSET", "k1", "f", "v"), {}),
        (("EVALSHA", "abc", 2, "k2", "k3", "arg"), {}),
        (("EXEC",), {}),
    ]
    assert transaction_keys(stack) == ["k1", "k2", "k3"]
