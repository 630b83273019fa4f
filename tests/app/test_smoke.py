from __future__ import annotations

from tests.app.conftest import Stack


async def test_create_project_command_and_poll(stack: Stack) -> None:
    _user, token = await stack.user("ada@example.com")
    async with stack.client(token) as http:
        r = await http.post("/api/projects", json={"name": "Web"})
        assert r.status_code == 201, r.text
        pid = r.json()["project"]
        r = await http.post(
            f"/api/projects/{pid}/commands",
            json={"command": {"type": "create_story", "title": "Hello"}},
        )
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 2
        r = await http.get(f"/api/projects/{pid}/events", params={"since": 0})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [e["version"] for e in body["events"]] == [1, 2]
        r = await http.get(f"/api/projects/{pid}/events", params={"since": 2}, headers={"If-None-Match": '"2"'})
        assert r.status_code == 304
