"""haproxy in front of the app and push tiers, as a deployment runs them."""

from __future__ import annotations

import httpx


def haproxy_config(
    app_port: int, push_port: int, apps: list[int], pushes: list[int], stats_port: int
) -> str:
    """Both tiers behind one haproxy. Health checks every 0.5 s, down after 2 (push)
    or 3 (app) failures: a dead or draining backend is out of rotation within about
    1 s (a refusal or a 503 fails a check at once); a refused connection is retried
    on the other backend (``redispatch``), so an app restart is not an error for
    clients. A check may take 2 s: with 0.5 s, both app processes, slowed by a herd
    of polls during a Redis pause, were marked down together and clients got 503s.
    Tunnel and server timeouts cover SSE and WebSocket."""
    app_servers = "\n".join(
        f"  server app{n} 127.0.0.1:{p} check inter 500ms fall 3 rise 2"
        for n, p in enumerate(apps, 1)
    )
    push_servers = "\n".join(
        f"  server push{n} 127.0.0.1:{p} check inter 500ms fall 2 rise 2"
        for n, p in enumerate(pushes, 1)
    )
    return f"""global
  maxconn 8000

defaults
  mode http
  timeout connect 2s
  timeout check 2s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  timeout http-request 10s
  timeout http-keep-alive 60s
  retries 3
  option redispatch 1

frontend app
  bind 127.0.0.1:{app_port}
  default_backend apps

backend apps
  balance roundrobin
  option httpchk GET /healthz
  retry-on conn-failure empty-response
{app_servers}

frontend push
  bind 127.0.0.1:{push_port}
  default_backend pushes

backend pushes
  balance leastconn
  option httpchk GET /readyz
{push_servers}

frontend stats
  bind 127.0.0.1:{stats_port}
  stats enable
  stats uri /stats
"""


async def balanced(stats_port: int, backend: str, server: str) -> bool:
    """Whether haproxy has the server UP (its health checks passed ``rise`` times):
    a restarted server takes no traffic before, so a rolling restart waits for it
    before draining the next one."""
    try:
        async with httpx.AsyncClient(timeout=1.0) as http:
            csv = (await http.get(f"http://127.0.0.1:{stats_port}/stats;csv")).text
    except httpx.HTTPError:
        return False
    for line in csv.splitlines():
        fields = line.split(",")
        if len(fields) > 17 and fields[0] == backend and fields[1] == server:
            return fields[17].startswith("UP")
    return False
