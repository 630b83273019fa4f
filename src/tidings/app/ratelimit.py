"""Sign-in throttling that an attacker cannot turn into a lock-out, sans-I/O.

Every attempt takes its tokens in ``admit`` before the password is checked, in
one synchronous step, so concurrent attempts cannot all pass a check made
before any of them failed. Token buckets (two floats a key, like
push/limits.py), each refilling completely in its window:

- failures per (account, address) pair: 10 per 5 min. A wrong password from
  one place slows that place only;
- failures per address, any account: 50 per 5 min (password spraying);
- failures per account from addresses it has never been signed in from: 100
  per 15 min, then exponential backoff (one attempt per 30 s, 60 s, ... up to
  15 min) until the account has had no attempt for 15 min. Addresses that
  signed in successfully (the last 8 per account) are exempt: the owner still
  signs in from home while a botnet guesses from everywhere else;
- successful sign-ins per account (20 per 5 min) and per address (100 per
  5 min): each costs an argon2 hash and a session row.

A trusted (account, address) pair is held only by its pair and account-success
buckets: neither others behind the same address (a NAT, an office) nor
guesses from elsewhere can keep the owner out.

A failure gives back the success tokens it took and a success the failure
tokens (and refills its pair), so the two kinds do not eat each other's budget.
Memory is bounded: each table keeps at most ``max_keys`` keys, least recently
used dropped first (an evicted bucket was the least recently touched, so
usually full already). Limits are per app process.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, fields, replace
from typing import Any, Generic, TypeVar

from tidings.protocol.errors import RateLimited

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class SignInLimits:
    """The numbers (docs/OPERATIONS.md, "Sign-in limits")."""

    pair_failures: int = 10
    address_failures: int = 50
    #: Each bucket above refills completely in this many seconds.
    window: float = 300.0
    #: Failures on one account from untrusted addresses before backoff starts.
    account_failures: int = 100
    #: The account ceiling refills in this, and backoff ends after this long quiet.
    account_window: float = 900.0
    backoff_base: float = 30.0
    backoff_max: float = 900.0
    account_successes: int = 20
    address_successes: int = 100
    #: Addresses remembered per account as trusted (signed in successfully).
    trusted_per_account: int = 8
    #: Keys per table (five bucket tables, backoff, trusted). All five bucket
    #: tables full measured 37 MB with 254-byte emails (the maximum) and IPv6
    #: addresses, 28 MB with 20-byte ones; the backoff table adds at most 8 MB.
    max_keys: int = 20_000

    @classmethod
    def parse(cls, spec: str) -> SignInLimits:
        """``name=value,...`` over the defaults (``TIDINGS_SIGNIN_LIMITS``, e.g.
        ``account_successes=60``); an unknown name or a value that is not a
        positive number raises ``ValueError`` saying which."""
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            name, _, raw = item.partition("=")
            name = name.strip()
            if name not in known:
                raise ValueError(
                    f"TIDINGS_SIGNIN_LIMITS: unknown limit {name!r} (known: {', '.join(known)})"
                )
            wrong = ValueError(
                f"TIDINGS_SIGNIN_LIMITS: {name} must be a positive number, not {raw!r}"
            )
            try:
                value = int(raw) if known[name] == "int" else float(raw)
            except ValueError:
                raise wrong from None
            if not value > 0:
                raise wrong
            values[name] = value
        return replace(cls(), **values)


class _Buckets(Generic[K]):
    """Token buckets by key: ``capacity`` tokens, refilled fully in ``window`` seconds."""

    def __init__(self, capacity: int, window: float, max_keys: int) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / window
        self.max_keys = max_keys
        self._table: OrderedDict[K, tuple[float, float]] = OrderedDict()

    def tokens(self, key: K, now: float) -> float:
        tokens, last = self._table.get(key, (self.capacity, now))
        return min(self.capacity, tokens + max(0.0, now - last) * self.rate)

    def wait(self, key: K, now: float) -> float:
        """Seconds until ``key`` has one token again (0 when it has one)."""
        return max(0.0, 1.0 - self.tokens(key, now)) / self.rate

    def add(self, key: K, delta: float, now: float) -> None:
        tokens = min(self.capacity, self.tokens(key, now) + delta)
        self._table[key] = (tokens, now)
        self._table.move_to_end(key)
        while len(self._table) > self.max_keys:
            self._table.popitem(last=False)

    def refill(self, key: K) -> None:
        self._table.pop(key, None)

    def __len__(self) -> int:
        return len(self._table)


@dataclass(slots=True)
class _Backoff:
    strikes: int = 0
    #: Untrusted attempts on the account wait until then.
    until: float = 0.0
    last_attempt: float = 0.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One admitted sign-in; pass it back to ``succeeded`` or ``failed``."""

    account: str
    address: str
    trusted: bool
    #: Admitted as the one attempt of a backoff period: its failure doubles the period.
    in_backoff: bool = False


@dataclass
class SignInLimiter:
    limits: SignInLimits = field(default_factory=SignInLimits)

    def __post_init__(self) -> None:
        lim = self.limits
        keys = lim.max_keys
        self._pair: _Buckets[tuple[str, str]] = _Buckets(lim.pair_failures, lim.window, keys)
        self._address: _Buckets[str] = _Buckets(lim.address_failures, lim.window, keys)
        self._account: _Buckets[str] = _Buckets(lim.account_failures, lim.account_window, keys)
        self._account_ok: _Buckets[str] = _Buckets(lim.account_successes, lim.window, keys)
        self._address_ok: _Buckets[str] = _Buckets(lim.address_successes, lim.window, keys)
        self._backoff: OrderedDict[str, _Backoff] = OrderedDict()
        self._trusted: OrderedDict[str, tuple[str, ...]] = OrderedDict()

    @staticmethod
    def account_key(email: str) -> str:
        return email.strip().lower()

    def is_trusted(self, account: str, address: str) -> bool:
        return address in self._trusted.get(account, ())

    def keys(self) -> int:
        """Keys held across every table (bounded by 7 x ``max_keys``)."""
        tables = (self._pair, self._address, self._account, self._account_ok, self._address_ok)
        return sum(len(t) for t in tables) + len(self._backoff) + len(self._trusted)

    def admit(self, email: str, address: str, now: float) -> Attempt:
        """Take this attempt's tokens, or raise RateLimited (429 + Retry-After)."""
        account = self.account_key(email)
        trusted = self.is_trusted(account, address)
        pair = (account, address)
        waits = [self._pair.wait(pair, now), self._account_ok.wait(account, now)]
        backoff = None
        if not trusted:
            # A trusted pair skips the address and account buckets: others sharing its
            # address (a NAT) or guessing its password elsewhere cannot hold it.
            waits += [self._address.wait(address, now), self._address_ok.wait(address, now)]
            backoff = self._live_backoff(account, now)
            if backoff is not None:
                waits.append(max(0.0, backoff.until - now))
            else:
                waits.append(self._account.wait(account, now))
        wait = max(waits)
        if wait > 0:
            raise RateLimited(
                "too many sign-in attempts; try again later", retry_after=max(1, int(wait) + 1)
            )
        self._pair.add(pair, -1, now)
        self._account_ok.add(account, -1, now)
        if not trusted:
            self._address.add(address, -1, now)
            self._address_ok.add(address, -1, now)
            self._account.add(account, -1, now)
            if backoff is not None:
                # One attempt per backoff period, however many arrive at once.
                backoff.until = now + self._delay(backoff.strikes)
                backoff.last_attempt = now
        return Attempt(account, address, trusted, in_backoff=backoff is not None)

    def failed(self, attempt: Attempt, now: float) -> None:
        self._account_ok.add(attempt.account, 1, now)
        if attempt.trusted:
            return
        self._address_ok.add(attempt.address, 1, now)
        backoff = self._live_backoff(attempt.account, now)
        if backoff is None and self._account.tokens(attempt.account, now) < 1:
            backoff = self._backoff[attempt.account] = _Backoff()
            while len(self._backoff) > self.limits.max_keys:
                self._backoff.popitem(last=False)
        elif backoff is None or not attempt.in_backoff:
            # Attempts admitted before the backoff began (in flight at once) do not
            # lengthen it: only each period's one attempt does.
            return
        backoff.strikes += 1
        backoff.until = now + self._delay(backoff.strikes)
        backoff.last_attempt = now
        self._backoff.move_to_end(attempt.account)

    def succeeded(self, attempt: Attempt, now: float) -> None:
        self._pair.refill((attempt.account, attempt.address))
        if not attempt.trusted:
            self._address.add(attempt.address, 1, now)
            self._account.add(attempt.account, 1, now)
        known = tuple(a for a in self._trusted.pop(attempt.account, ()) if a != attempt.address)
        self._trusted[attempt.account] = (attempt.address, *known)[
            : self.limits.trusted_per_account
        ]
        while len(self._trusted) > self.limits.max_keys:
            self._trusted.popitem(last=False)

    def cancel(self, attempt: Attempt, now: float) -> None:
        """Give back an attempt's tokens: its password was never checked (503)."""
        self._pair.add((attempt.account, attempt.address), 1, now)
        self._account_ok.add(attempt.account, 1, now)
        if not attempt.trusted:
            self._address.add(attempt.address, 1, now)
            self._address_ok.add(attempt.address, 1, now)
            self._account.add(attempt.account, 1, now)

    def _delay(self, strikes: int) -> float:
        lim = self.limits
        # The exponent is capped so that 2**n never overflows however long an attack runs.
        return float(min(lim.backoff_max, lim.backoff_base * 2 ** min(max(strikes - 1, 0), 30)))

    def _live_backoff(self, account: str, now: float) -> _Backoff | None:
        """The account's backoff, unless it has been quiet for ``account_window``."""
        backoff = self._backoff.get(account)
        if backoff is None:
            return None
        if now - max(backoff.until, backoff.last_attempt) >= self.limits.account_window:
            del self._backoff[account]
            self._account.refill(account)
            return None
        return backoff


@dataclass(frozen=True, slots=True)
class TelemetryLimits:
    """Freshness reports per user (docs/OPERATIONS.md, "Telemetry limits").

    A client reports every 60 s at most, sooner only when it holds 500 samples;
    ten a minute leaves room for several tabs. Missed pokes say "push is broken
    for this user": ten in 5 min say it as well as a million, so that is all a
    user can add, and an alert on the rate needs several users to fire.
    """

    reports: int = 10
    window: float = 60.0
    missed_pokes: int = 10
    missed_window: float = 300.0
    #: Users tracked (least recently used dropped first): two tables of
    #: (int key, two floats), about 10 MB at the maximum.
    max_keys: int = 20_000


@dataclass
class TelemetryLimiter:
    limits: TelemetryLimits = field(default_factory=TelemetryLimits)

    def __post_init__(self) -> None:
        lim = self.limits
        self._reports: _Buckets[int] = _Buckets(lim.reports, lim.window, lim.max_keys)
        self._missed: _Buckets[int] = _Buckets(lim.missed_pokes, lim.missed_window, lim.max_keys)

    def admit(self, user: int, now: float) -> None:
        """Take one report from ``user`` before its body is read; RateLimited past the limit."""
        wait = self._reports.wait(user, now)
        if wait > 0:
            raise RateLimited(
                "too many telemetry reports; send one a minute",
                retry_after=max(1, int(wait) + 1),
            )
        self._reports.add(user, -1, now)

    def missed_to_count(self, user: int, missed_pokes: int, now: float) -> int:
        """The missed pokes to count: those reported, within what is left of the budget."""
        counted = min(missed_pokes, int(self._missed.tokens(user, now)))
        if counted:
            self._missed.add(user, -counted, now)
        return counted
