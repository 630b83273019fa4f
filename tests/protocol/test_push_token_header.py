"""The lean header read that picks a push token's key: every malformed header is a
BadToken (a 4401 close), never a crash, and a valid token still verifies after a
key ring's key was prepared once."""

from __future__ import annotations

import base64

import pytest

from tidings.protocol.errors import BadToken
from tidings.protocol.tokens import KeyRing, sign_push_token, verify_push_token


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "no-dot-at-all",
        "%%%%.e30.sig",
        b64(b"[1, 2]") + ".e30.sig",
        b64(b'"alg"') + ".e30.sig",
        b64(b"\xff\xfe{}") + ".e30.sig",
        b64(b"[" * 10_000 + b"]" * 10_000)[:8000] + ".e30.sig",
        b64(b"[" * 3000 + b"]" * 3000) + ".e30.sig",
        "é" + b64(b'{"alg":"HS256"}') + ".e30.sig",
    ],
)
def test_a_malformed_header_is_a_bad_token(token: str) -> None:
    with pytest.raises(BadToken):
        verify_push_token(KeyRing.generate(), token)


def test_a_token_verifies_again_with_its_key_prepared_and_fails_with_another_key() -> None:
    ring = KeyRing.generate()
    token, claims = sign_push_token(ring, 7, [42])
    assert verify_push_token(ring, token) == verify_push_token(ring, token) == claims
    # Same kid, other secret: the prepared key of the first ring is not reused.
    (kid,) = ring.spec().split(":", 1)[:1]
    other = KeyRing({kid: b"x" * 48})
    with pytest.raises(BadToken, match="invalid token"):
        verify_push_token(other, token)
    # A signature byte changed: still refused with the key prepared.
    head, payload, sig = token.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    with pytest.raises(BadToken):
        verify_push_token(ring, f"{head}.{payload}.{flipped}")
