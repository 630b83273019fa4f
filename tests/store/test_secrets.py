"""Issued secrets (API tokens, sessions) can be passed on a command line as the
value of an option: none starts with ``-``."""

from __future__ import annotations

import itertools
import secrets

import pytest

from tidings.store import accounts


def test_a_secret_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = itertools.chain(["-h0WI3ue", "--x", "_ok"], itertools.repeat("later"))
    monkeypatch.setattr(secrets, "token_urlsafe", lambda _n: next(drawn))
    assert accounts.new_secret() == "_ok"


def test_secrets_are_32_random_bytes_url_safe() -> None:
    made = {accounts.new_secret() for _ in range(2000)}
    assert len(made) == 2000
    assert all(len(s) == 43 and not s.startswith("-") for s in made)
    assert all(
        set(s) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for s in made
    )
