"""``tidings token`` and ``tidings publish``: the library from a shell, for
operators and scripts (docs/OPERATIONS.md). Core install only.

Exit codes of ``tidings publish``: 0 published, 3 refused as stale (the version
key held a later version; nothing sent), 1 not published (Redis unreachable or
refusing, after the retries), 2 bad arguments or settings.
"""

from __future__ import annotations

import argparse
import os
import sys

import orjson

from tidings.protocol.tokens import (
    DEFAULT_TTL_SECONDS,
    KeyRing,
    TokenTooLarge,
    sign_push_token,
)
from tidings.publish.outcome import PublishFailed, Retry
from tidings.publish.sync import PushPublisher

#: ``tidings publish``: the poke went out.
PUBLISHED = 0
#: Redis was not reached, or refused, on every attempt.
FAILED = 1
#: Bad arguments or settings (also argparse's own code).
USAGE = 2
#: The version key already held a later version: nothing was published.
STALE = 3

#: ``--ttl`` at most: a test token should not outlive a day.
MAX_TTL_SECONDS = 86_400


def add_token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", type=int, required=True, help="the user id (claim sub)")
    parser.add_argument(
        "--project",
        type=int,
        action="append",
        required=True,
        dest="projects",
        help="a project the token may watch (claim prj); repeat for more",
    )
    parser.add_argument(
        "--ttl",
        type=float,
        default=DEFAULT_TTL_SECONDS,
        help=f"lifetime in seconds (default {DEFAULT_TTL_SECONDS}, at most {MAX_TTL_SECONDS})",
    )
    parser.add_argument(
        "--json", action="store_true", help="print {token, expires_at, projects, kid} as JSON"
    )


def run_token(args: argparse.Namespace) -> int:
    """Print a push token signed with the first key of ``TIDINGS_PUSH_KEYS``."""
    try:
        keys = KeyRing.from_env(os.environ)
    except ValueError as exc:
        return _usage("token", str(exc))
    if not 0 < args.ttl <= MAX_TTL_SECONDS:
        return _usage("token", f"--ttl must be in (0, {MAX_TTL_SECONDS}] seconds")
    if args.user <= 0 or any(p <= 0 for p in args.projects):
        return _usage("token", "--user and --project are positive ids")
    try:
        token, claims = sign_push_token(keys, args.user, args.projects, ttl=args.ttl)
    except TokenTooLarge as exc:
        return _usage("token", str(exc))
    if args.json:
        body = {
            "token": token,
            "expires_at": claims.expires_at,
            "projects": sorted(claims.projects),
            "kid": keys.signing_kid,
        }
        print(orjson.dumps(body).decode())
    else:
        print(token)
    return 0


def add_publish_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", type=int, help="the project id")
    parser.add_argument("version", type=int, help="the project's version after the commit")
    parser.add_argument(
        "--redis-url", default=None, help="Redis (default: REDIS_URL; redis+cluster://h:p,...)"
    )
    parser.add_argument(
        "--sharded",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="SPUBLISH (default: TIDINGS_REDIS_SHARDED; must match the push servers)",
    )
    parser.add_argument(
        "--attempts", type=int, default=3, help="tries before giving up (1..10, default 3)"
    )


def run_publish(args: argparse.Namespace) -> int:
    """One poke, with the version key's compare-and-set first."""
    try:
        retry = Retry(attempts=args.attempts)
        publisher = PushPublisher.connect(args.redis_url, sharded=args.sharded, retry=retry)
    except ValueError as exc:
        return _usage("publish", str(exc))
    try:
        outcome = publisher.poke(args.project, args.version)
    except ValueError as exc:
        return _usage("publish", str(exc))
    except PublishFailed as exc:
        print(f"tidings publish: {exc}", file=sys.stderr)
        return FAILED
    finally:
        publisher.close()
    if outcome.stale:
        print(
            f"refused as stale: project {outcome.project} is already at version "
            f"{outcome.stored} (> {outcome.version}); nothing published"
        )
        return STALE
    print(f"published: project {outcome.project} version {outcome.version}")
    return PUBLISHED


def _usage(command: str, message: str) -> int:
    print(f"tidings {command}: {message}", file=sys.stderr)
    return USAGE
