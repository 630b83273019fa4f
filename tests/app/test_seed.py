"""The demo's sample project reads as a tracker's would: each story's type is the one
its title says (a fix or "Bug:" is a bug, upkeep a chore, a version a release)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from tidings.app.seed import seed
from tidings.store.accounts import Accounts
from tidings.store.engine import create_engines
from tidings.store.events import EventStore
from tidings.store.migrate import upgrade

#: Title words that name a type; a title with none of them is a feature.
SAYS = (
    (re.compile(r"^(Bug:|Fix\b)"), "bug"),
    (re.compile(r"^(Chore:|Upgrade\b)|\baudit\b"), "chore"),
    (re.compile(r"^Release \d"), "release"),
)


def type_in(title: str) -> str:
    return next((kind for pattern, kind in SAYS if pattern.search(title)), "feature")


async def test_every_seeded_story_has_the_type_its_title_says(tmp_path: Path) -> None:
    engines = create_engines(f"sqlite:///{tmp_path}/seed.sqlite3")
    try:
        await upgrade(engines)
        store = EventStore(engines)
        seeded = await seed(Accounts(engines), store)
        found = await store.snapshot(seeded.project_id)
        assert found is not None
        stories = orjson.loads(found[1])["stories"]
        wrong = [
            (s["title"], s["story_type"]) for s in stories if s["story_type"] != type_in(s["title"])
        ]
        assert wrong == []
        assert {s["story_type"] for s in stories} == {"feature", "bug", "chore", "release"}
    finally:
        await engines.dispose()
