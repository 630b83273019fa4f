"""Sample data for ``tidings demo``: three users and a project with a few dozen
stories, comments and tasks, all written through real commands (so the demo
project has a real event history to poll).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic import TypeAdapter

from tidings.domain import commands as c
from tidings.domain.decide import KnownUser
from tidings.store.accounts import Accounts, User
from tidings.store.events import EventStore

DEMO_PASSWORD = "tidings-demo"

USERS = (
    ("ada@example.com", "Ada Lovelace", True),
    ("grace@example.com", "Grace Hopper", False),
    ("linus@example.com", "Linus Viewer", False),
)

#: Each sample story's title and the type it reads as: a fix or a "Bug:" is a bug,
#: upkeep (upgrades, key rotation, audits) a chore, a version a release.
STORIES = (
    ("Sign-up form validates email", "feature"),
    ("Password reset by email", "feature"),
    ("Board columns scroll", "feature"),
    ("Drag stories between columns", "feature"),
    ("Story detail panel", "feature"),
    ("Comment notifications", "feature"),
    ("Keyboard shortcuts", "feature"),
    ("Dark mode", "feature"),
    ("Export project as CSV", "feature"),
    ("Import from CSV", "feature"),
    ("Velocity chart", "feature"),
    ("Iteration planning", "feature"),
    ("Label filter", "feature"),
    ("Search stories", "feature"),
    ("Owner avatars", "feature"),
    ("Estimate picker", "feature"),
    ("Release markers", "feature"),
    ("Story history view", "feature"),
    ("Mobile layout", "feature"),
    ("Accessibility audit", "chore"),
    ("Rate-limit sign-in", "feature"),
    ("Audit log", "feature"),
    ("Project archive", "feature"),
    ("Slack integration", "feature"),
    ("Webhook on accept", "feature"),
    ("Story templates", "feature"),
    ("Bulk move", "feature"),
    ("Epic grouping", "feature"),
    ("Blocked flag", "feature"),
    ("Task checklist reorder", "feature"),
    ("Fix flaky login redirect", "bug"),
    ("Upgrade PostgreSQL", "chore"),
    ("Chore: rotate keys", "chore"),
    ("Bug: duplicate comments", "bug"),
    ("Bug: estimate resets", "bug"),
    ("Release 1.0", "release"),
)
STATES = ("unscheduled", "unstarted", "started", "finished", "delivered", "accepted")
LABELS = ("ui", "api", "auth", "perf", "infra", "docs")

command = TypeAdapter(c.Command)


@dataclass(frozen=True, slots=True)
class Seeded:
    users: list[User]
    project_id: int


async def seed(accounts: Accounts, store: EventStore, *, rng_seed: int = 7) -> Seeded:
    rng = random.Random(rng_seed)
    users = [
        await accounts.create_user(email, name, DEMO_PASSWORD, is_admin=admin)
        for email, name, admin in USERS
    ]
    owner = users[0]
    created = await store.create_project("Tracker demo", KnownUser(owner.id, owner.name))
    project = created.project_id

    async def run(actor: User, body: dict[str, object]) -> int | None:
        result = await store.execute(project, actor.id, command.validate_python(body))
        return result.event["data"].get("story", {}).get("id") or (
            result.event["data"].get("comment") or result.event["data"].get("task") or {}
        ).get("id")

    target = KnownUser(users[1].id, users[1].name)
    await store.execute(
        project, owner.id, c.AddMember(type="add_member", email=users[1].email), target=target
    )
    viewer = KnownUser(users[2].id, users[2].name)
    await store.execute(
        project,
        owner.id,
        c.AddMember(type="add_member", email=users[2].email, role=c.Role.VIEWER),
        target=viewer,
    )
    writers = users[:2]
    for title, story_type in STORIES:
        actor = rng.choice(writers)
        story_id = await run(
            actor,
            {
                "type": "create_story",
                "title": title,
                "description": f"As a user I want: {title.lower()}.",
                "story_type": story_type,
                "state": rng.choice(STATES),
                "estimate": rng.choice([None, 1, 2, 3, 5, 8]),
                "owner_id": rng.choice([None, *(u.id for u in writers)]),
                "labels": rng.sample(LABELS, rng.randint(0, 2)),
            },
        )
        for _ in range(rng.randint(0, 3)):
            await run(
                rng.choice(writers),
                {"type": "add_comment", "story_id": story_id, "text": rng.choice(COMMENTS)},
            )
        for n in range(rng.randint(0, 4)):
            task_id = await run(
                actor, {"type": "add_task", "story_id": story_id, "text": f"Step {n + 1}"}
            )
            if rng.random() < 0.4:
                await run(
                    actor,
                    {"type": "complete_task", "story_id": story_id, "task_id": task_id},
                )
    return Seeded(users, project)


COMMENTS = (
    "Looks good to me.",
    "Can we split this into two stories?",
    "Blocked on the API change.",
    "Deployed to staging.",
    "Needs a design review first.",
)
