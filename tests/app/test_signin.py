"""Signing in under attack: limits that hold under concurrency, that an attacker
cannot turn into a lock-out, and argon2 off the event loop with a bounded queue."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from typing import Any, Literal

import httpx
import pytest
from argon2 import PasswordHasher

from tests.app.conftest import CHEAP_HASHER, PASSWORD, Stack, StackFactory
from tidings.app.passwords import PASSWORD_NICENESS
from tidings.app.ratelimit import SignInLimits

#: Seconds any test here waits for a condition before failing.
WAIT = 10.0


async def sign_in(stack: Stack, email: str, password: str, address: str) -> httpx.Response:
    async with stack.client(address=address) as http:
        return await http.post("/api/session", json={"email": email, "password": password})


async def statuses(*calls: Any) -> Counter[int]:
    return Counter(r.status_code for r in await asyncio.gather(*calls))


@pytest.fixture
async def store_stack(make_stack: StackFactory, db_url: str) -> Stack:
    """The app on each store: the limiter's tokens are taken across the store's awaits."""
    return await make_stack(db_url)


async def test_concurrent_wrong_passwords_on_one_account_stop_at_the_pair_limit(
    store_stack: Stack,
) -> None:
    await store_stack.user("ada@x.io")
    wrong = [sign_in(store_stack, "ada@x.io", "wrong", "10.0.0.1") for _ in range(40)]
    assert await statuses(*wrong) == {401: 10, 429: 30}


async def test_concurrent_wrong_passwords_from_one_address_stop_at_its_limit(
    store_stack: Stack,
) -> None:
    wrong = [sign_in(store_stack, f"u{i}@x.io", "wrong", "10.0.0.2") for i in range(80)]
    assert await statuses(*wrong) == {401: 50, 429: 30}


async def test_an_attacker_elsewhere_does_not_lock_the_owner_out(stack: Stack) -> None:
    await stack.user("ada@x.io")
    for _ in range(10):
        assert (await sign_in(stack, "ada@x.io", "wrong", "10.0.0.66")).status_code == 401
    refused = await sign_in(stack, "ada@x.io", PASSWORD, "10.0.0.66")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    # The owner, from an address never seen before, is not the attacker's pair.
    assert (await sign_in(stack, "ada@x.io", PASSWORD, "192.168.1.5")).status_code == 200


async def test_past_the_account_ceiling_only_trusted_addresses_sign_in(
    make_stack: StackFactory, sqlite_url: str
) -> None:
    stack = await make_stack(sqlite_url)
    await stack.user("ada@x.io")
    home = "192.168.1.5"
    assert (await sign_in(stack, "ada@x.io", PASSWORD, home)).status_code == 200
    ceiling = stack.settings.signin_limits.account_failures
    pair = stack.settings.signin_limits.pair_failures
    # A botnet: enough addresses that no pair limit stops it before the ceiling.
    bots = [f"10.1.{i // 250}.{i % 250}" for i in range(ceiling // pair + 2)]
    got: Counter[int] = Counter()
    started = time.monotonic()
    for bot in bots:
        got += await statuses(*(sign_in(stack, "ada@x.io", "wrong", bot) for _ in range(pair)))
    # The ceiling refills slowly (by ceiling / account_window a second) while the bots run.
    refilled = (time.monotonic() - started) * ceiling / stack.settings.signin_limits.account_window
    assert ceiling <= got[401] <= ceiling + refilled + 1
    assert got[401] + got[429] == len(bots) * pair
    fresh = await sign_in(stack, "ada@x.io", "wrong", "10.2.0.1")
    backoff = stack.settings.signin_limits.backoff_base
    assert fresh.status_code == 429
    assert 1 <= int(fresh.headers["Retry-After"]) <= backoff + 1
    assert fresh.json()["error"] == "rate_limited"
    # The owner at home is unaffected; a new device waits out the backoff.
    assert (await sign_in(stack, "ada@x.io", PASSWORD, home)).status_code == 200
    assert (await sign_in(stack, "ada@x.io", PASSWORD, "172.16.0.9")).status_code == 429


async def test_successful_sign_ins_are_limited_per_account(stack: Stack) -> None:
    await stack.user("ada@x.io")
    per_account = stack.settings.signin_limits.account_successes
    for _ in range(per_account):
        assert (await sign_in(stack, "ada@x.io", PASSWORD, "10.0.0.3")).status_code == 200
    again = await sign_in(stack, "ada@x.io", PASSWORD, "10.0.0.4")
    assert again.status_code == 429 and int(again.headers["Retry-After"]) > 0


async def test_successful_sign_ins_are_limited_per_address(
    make_stack: StackFactory, sqlite_url: str
) -> None:
    stack = await make_stack(sqlite_url, signin_limits=SignInLimits(address_successes=5))
    for i in range(6):
        await stack.user(f"u{i}@x.io")
    got = [(await sign_in(stack, f"u{i}@x.io", PASSWORD, "10.0.0.5")).status_code for i in range(6)]
    assert got == [200] * 5 + [429]
    assert (await sign_in(stack, "u5@x.io", PASSWORD, "10.0.0.6")).status_code == 200


class GatedHasher(PasswordHasher):
    """argon2id that holds each verify on its thread until the test opens the gate,
    so a test can observe sign-ins in flight."""

    def __init__(self) -> None:
        cheap = CHEAP_HASHER
        super().__init__(
            time_cost=cheap.time_cost, memory_cost=cheap.memory_cost, parallelism=cheap.parallelism
        )
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)
        self.timed_out = False

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.entered.release()
        if not self.gate.wait(WAIT):
            self.timed_out = True
        return super().verify(hash, password)


async def wait_for(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_password_checks_run_off_the_event_loop(
    make_stack: StackFactory, sqlite_url: str
) -> None:
    hasher = GatedHasher()
    stack = await make_stack(sqlite_url, hasher=hasher)
    _u, token = await stack.user("ada@x.io")
    signing_in = asyncio.ensure_future(sign_in(stack, "ada@x.io", PASSWORD, "10.0.0.7"))
    await wait_for(lambda: hasher.entered.acquire(blocking=False), "the verify to start")
    # The verify is blocked on its thread; the loop still answers other users.
    async with stack.client(token) as http:
        me = await asyncio.wait_for(http.get("/api/me"), WAIT)
    assert me.status_code == 200 and not hasher.gate.is_set()
    hasher.gate.set()
    assert (await signing_in).status_code == 200
    assert not hasher.timed_out


async def test_a_flood_of_sign_ins_queues_a_bounded_amount_then_gets_503(
    make_stack: StackFactory, sqlite_url: str
) -> None:
    hasher = GatedHasher()
    stack = await make_stack(sqlite_url, hasher=hasher, password_workers=1, password_queue=2)
    for i in range(6):
        await stack.user(f"u{i}@x.io")
    calls = [
        asyncio.ensure_future(sign_in(stack, f"u{i}@x.io", PASSWORD, f"10.3.0.{i}"))
        for i in range(6)
    ]
    pool = stack.services.passwords
    try:
        await wait_for(lambda: sum(c.done() for c in calls) == 3, "three refusals")
        assert pool.in_flight == pool.bound == 3
        for refused in (c.result() for c in calls if c.done()):
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "unavailable"
            assert int(refused.headers["Retry-After"]) >= 1
    finally:
        hasher.gate.set()
    answers = await asyncio.gather(*calls)
    assert Counter(r.status_code for r in answers) == {200: 3, 503: 3}
    assert pool.in_flight == 0
    # A refused sign-in was never checked: it cost none of the user's attempts.
    refused_user = next(i for i, r in enumerate(answers) if r.status_code == 503)
    email = f"u{refused_user}@x.io"
    assert (await sign_in(stack, email, PASSWORD, f"10.3.0.{refused_user}")).status_code == 200


async def test_password_threads_yield_the_cpu_to_the_event_loop(stack: Stack) -> None:
    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    assert await stack.services.passwords.run(niceness) >= PASSWORD_NICENESS


async def test_a_sprayer_behind_the_owners_address_does_not_lock_the_owner_out(
    make_stack: StackFactory, sqlite_url: str
) -> None:
    stack = await make_stack(sqlite_url)
    await stack.user("ada@x.io")
    await stack.user("bob@x.io")
    office = "10.9.9.9"  # one NAT address for everyone in the office
    assert (await sign_in(stack, "ada@x.io", PASSWORD, office)).status_code == 200
    per_address = stack.settings.signin_limits.address_failures
    spray = [sign_in(stack, f"victim{i}@x.io", "guess", office) for i in range(per_address + 5)]
    assert await statuses(*spray) == {401: per_address, 429: 5}
    # Bob never signed in from here: held with the sprayer. Ada did: not held.
    assert (await sign_in(stack, "bob@x.io", PASSWORD, office)).status_code == 429
    assert (await sign_in(stack, "ada@x.io", PASSWORD, office)).status_code == 200
