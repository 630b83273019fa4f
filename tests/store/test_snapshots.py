"""The kept snapshots' byte budget (pure: no database)."""

from __future__ import annotations

import gzip

from tidings.store.snapshots import Kept, SnapshotCache


def kept(pid: int, stories: int) -> Kept:
    ranks = {n: n * 10 for n in range(1, stories + 1)}
    bodies = {n: f'{{"id":{n}}}'.encode() for n in range(1, stories + 1)}
    return Kept(pid, 1, "P", stories + 1, {1: ("owner", "O", 1)}, ranks, bodies)


def test_the_cache_keeps_within_its_budget_least_recently_kept_out_first() -> None:
    one = kept(1, 50)
    cache = SnapshotCache(budget=int(one.cost() * 2.5))
    for pid in (1, 2, 3):
        cache.keep(kept(pid, 50))
    assert cache.get(1) is None and cache.get(2) is not None and cache.get(3) is not None
    assert cache.charged == 2 * one.cost() <= int(one.cost() * 2.5)
    cache.keep(kept(4, 500))  # larger than the whole budget: not kept, nothing evicted
    assert cache.get(4) is None and cache.charged == 2 * one.cost()
    cache.drop(2)
    assert cache.get(2) is None and cache.charged == one.cost()


def test_an_event_that_does_not_follow_the_copy_leaves_it_unchanged() -> None:
    k = kept(1, 3)
    before = k.encoded()
    event = {"version": 3, "type": "story_updated", "data": {"story_id": 1}, "actor": 1, "ts": 0}
    assert not k.advance(event)
    assert k.encoded() == before and k.version == 1


def test_a_copy_is_charged_what_it_holds_once_a_get_encoded_or_compressed_it() -> None:
    k = kept(1, 400)
    bare = k.cost()
    assert bare == sum(map(len, k.bodies.values())) + 300 * 400
    cache = SnapshotCache()
    cache.keep(k)
    packed = k.gzipped(4)
    assert gzip.decompress(packed) == k.encoded()
    assert k.cost() == bare + len(k.encoded()) + len(packed) + k.blocks.charged
    assert k.blocks.charged > sum(map(len, (run.deflated for run in k.blocks._runs.values())))
    assert cache.charged == bare
    cache.recharge(k)
    assert cache.charged == k.cost()
    # A story updated: its body replaced, the stream and the encoding dropped.
    event = {
        "version": 2,
        "type": "story_updated",
        "data": {"story_id": 7, "changes": {"title": "longer than before"}},
        "actor": 1,
        "ts": 0,
    }
    assert k.advance(event)
    assert k.cost() == sum(map(len, k.bodies.values())) + 300 * 400 + k.blocks.charged
    assert b"longer than before" in k.bodies[7]
    assert gzip.decompress(k.gzipped(4)) == k.encoded()
