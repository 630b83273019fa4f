"""Follow one to-do list from a terminal: prints the list as a JSON line at start
and after every change (``python follow.py URL TOKEN LIST``; pipe it to ``jq``).

tidings' client follows it: a poke from the push servers makes it poll at once;
it polls at the long interval while push is healthy, at the short one otherwise.
It also prints each change of how it syncs (``{"status": ...}``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from tidings.client.driver import ClientOptions, Endpoints, SyncClient

#: This app's URLs where they differ from tidings' own (docs/PROTOCOL.md §1).
ENDPOINTS = Endpoints(
    snapshot="/api/lists/{project}", events="/api/lists/{project}/events", poll=None
)


def apply_event(snapshot: dict[str, Any], event: dict[str, Any]) -> None:
    """What each event of todo.py's ``record`` does to a list's snapshot."""
    data, items = event["data"], snapshot["items"]
    if event["type"] == "list_created":
        snapshot["name"] = data["name"]
    elif event["type"] == "item_added":
        items.append(data)
    elif event["type"] == "item_updated":
        snapshot["items"] = [data if item["id"] == data["id"] else item for item in items]
    elif event["type"] == "item_deleted":
        snapshot["items"] = [item for item in items if item["id"] != data["id"]]
    snapshot["version"] = event["version"]


def show(snapshot: dict[str, Any] | None) -> None:
    if snapshot is not None:
        keys = ("name", "version", "items")
        print(json.dumps({key: snapshot[key] for key in keys}), flush=True)


async def follow(base: str, token: str, list_id: int) -> None:
    client = SyncClient(
        ClientOptions(
            url=base,
            projects=[list_id],
            api_token=token,
            endpoints=ENDPOINTS,
            apply_event=apply_event,
        ),
        on_reload=lambda _list, snapshot: show(snapshot),
        on_apply=lambda _list, _events, snapshot: show(snapshot),
        on_status=lambda status: print(json.dumps({"status": str(status)}), flush=True),
    )
    await client.run()


def main() -> None:
    base, token, list_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
    asyncio.run(follow(base, token, list_id))


if __name__ == "__main__":
    main()
