"""The kept snapshots' byte budget (pure: no database)."""

from __future__ import annotations

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
