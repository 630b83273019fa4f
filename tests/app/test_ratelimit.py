"""The sign-in limiter's rules as plain calls with time passed in: backoff that
doubles and ends, trust earned by signing in, and a bounded number of keys."""

from __future__ import annotations

import pytest

from tidings.app.ratelimit import SignInLimiter, SignInLimits
from tidings.app.settings import AppSettings
from tidings.protocol.errors import RateLimited


def fail_until_refused(limiter: SignInLimiter, email: str, address: str, now: float) -> int:
    """Failures admitted before the first refusal."""
    for admitted in range(10_000):
        try:
            attempt = limiter.admit(email, address, now)
        except RateLimited:
            return admitted
        limiter.failed(attempt, now)
    raise AssertionError("never refused")


def test_account_backoff_doubles_up_to_its_cap_and_ends_after_a_quiet_window() -> None:
    lim = SignInLimits()
    limiter = SignInLimiter(lim)
    now = 1000.0
    bots = (f"10.0.{i // 250}.{i % 250}" for i in range(10_000))
    admitted = 0
    while admitted < lim.account_failures:
        admitted += fail_until_refused(limiter, "ada@x.io", next(bots), now)
    assert admitted == lim.account_failures
    waits = []
    for _ in range(8):
        with pytest.raises(RateLimited) as refused:
            limiter.admit("ada@x.io", next(bots), now)
        wait = refused.value.extra["retry_after"]
        waits.append(wait)
        now += wait  # the bots come back exactly when allowed: one guess per period
        attempt = limiter.admit("ada@x.io", next(bots), now)
        with pytest.raises(RateLimited):  # however many arrive together
            limiter.admit("ada@x.io", next(bots), now)
        limiter.failed(attempt, now)
    assert waits == [31, 61, 121, 241, 481, 901, 901, 901]
    now += lim.backoff_max + lim.account_window
    assert fail_until_refused(limiter, "ada@x.io", next(bots), now) == lim.pair_failures


def test_a_trusted_address_is_not_held_by_the_account_backoff() -> None:
    limiter = SignInLimiter()
    home = limiter.admit("Ada@x.io ", "192.168.1.5", 0.0)
    limiter.succeeded(home, 0.0)
    assert limiter.is_trusted("ada@x.io", "192.168.1.5")
    for i in range(20):
        fail_until_refused(limiter, "ada@x.io", f"10.0.0.{i}", 1.0)
    with pytest.raises(RateLimited):
        limiter.admit("ada@x.io", "172.16.0.1", 1.0)
    limiter.succeeded(limiter.admit("ada@x.io", "192.168.1.5", 1.0), 1.0)


def test_a_success_refills_its_pair_and_a_failure_gives_back_the_success_budget() -> None:
    limiter = SignInLimiter(SignInLimits(pair_failures=3, account_successes=2))
    for _ in range(2):
        limiter.failed(limiter.admit("ada@x.io", "a", 0.0), 0.0)
    limiter.succeeded(limiter.admit("ada@x.io", "a", 0.0), 0.0)
    assert fail_until_refused(limiter, "ada@x.io", "a", 0.0) == 3
    limiter.succeeded(limiter.admit("ada@x.io", "b", 0.0), 0.0)
    with pytest.raises(RateLimited):  # two successes per window: one above, one here
        limiter.admit("ada@x.io", "c", 0.0)


def test_memory_is_bounded_however_many_keys_an_attacker_makes_up() -> None:
    limits = SignInLimits(max_keys=500)
    limiter = SignInLimiter(limits)
    for i in range(5_000):
        address = f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"
        attempt = limiter.admit(f"user{i}@x.io", address, float(i))
        if i % 2:
            limiter.failed(attempt, float(i))
        else:
            limiter.succeeded(attempt, float(i))
    assert limiter.keys() <= 7 * limits.max_keys


def test_limits_are_set_by_name_over_the_defaults_and_a_wrong_one_is_refused() -> None:
    limits = SignInLimits.parse("account_successes=60, window=120")
    assert (limits.account_successes, limits.window) == (60, 120.0)
    assert limits.pair_failures == SignInLimits().pair_failures
    assert AppSettings.from_env(
        {"TIDINGS_SIGNIN_LIMITS": "address_successes=500"}
    ).signin_limits == (SignInLimits(address_successes=500))
    for spec, reason in (
        ("account_sucesses=60", "unknown limit 'account_sucesses'"),
        ("account_successes=1.5", "account_successes must be a positive number"),
        ("window=0", "window must be a positive number"),
        ("max_keys=", "max_keys must be a positive number"),
    ):
        with pytest.raises(ValueError, match=reason):
            SignInLimits.parse(spec)
