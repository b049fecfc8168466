"""The Clone pattern's sequencing rules, on their own: drop old, hold early, name the gap, apply in order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from events.schema import Envelope, SessionStarted
from oms.client.clone import Sequencer


def env(seq: int) -> Envelope:
    return Envelope(seq=seq, ts=seq, event=SessionStarted(version="t", config_digest="d"))


def seqs(envs: list[Envelope]) -> list[int]:
    return [e.seq for e in envs]


def test_updates_at_or_below_the_snapshot_seq_are_dropped() -> None:
    sequencer = Sequencer(applied=5)
    assert sequencer.offer(env(4)) == []
    assert sequencer.offer(env(5)) == []
    assert seqs(sequencer.offer(env(6))) == [6]
    assert sequencer.missing() is None


def test_an_early_update_is_held_and_the_gap_before_it_named() -> None:
    sequencer = Sequencer(applied=1)
    assert sequencer.offer(env(4)) == []
    assert sequencer.missing() == (2, 3)
    assert seqs(sequencer.offer_many([env(3), env(2)])) == [2, 3, 4]
    assert sequencer.applied == 4
    assert sequencer.missing() is None


def test_a_heartbeat_ahead_of_the_applied_seq_reveals_a_trailing_gap() -> None:
    sequencer = Sequencer(applied=10)
    sequencer.saw_seq(10)
    assert sequencer.missing() is None
    sequencer.saw_seq(13)
    assert sequencer.missing() == (11, 13)
    sequencer.offer_many([env(11), env(12), env(13)])
    assert sequencer.missing() is None


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, 20),
    total=st.integers(0, 60),
    data=st.data(),
)
def test_any_arrival_order_with_repeats_and_losses_repairs_to_one_contiguous_run(
    start: int, total: int, data: st.DataObject
) -> None:
    """Whatever PUB delivers (lost, repeated, reordered, pre-snapshot), repair by `missing()` applies
    every seq after the snapshot exactly once, in order."""
    published = list(range(1, start + total + 1))
    delivered = data.draw(
        st.lists(st.sampled_from(published), max_size=3 * len(published)) if published else st.just([])
    )
    sequencer = Sequencer(applied=start)
    applied: list[int] = []
    for seq in delivered:
        applied += seqs(sequencer.offer(env(seq)))
    sequencer.saw_seq(start + total)  # the heartbeat
    while (gap := sequencer.missing()) is not None:
        first, last = gap
        assert first == sequencer.applied + 1 and last >= first
        applied += seqs(sequencer.offer_many([env(s) for s in range(first, last + 1)]))
    assert applied == list(range(start + 1, start + total + 1))
