"""The hand-written HS256 verifier decides as PyJWT does on every token variant here.

``verify_push_token`` no longer calls PyJWT (docs/PERFORMANCE.md, "Reconnect
storms"); each case below is also decoded by PyJWT with the options the
verifier used to pass it, and the two must agree, except where the verifier is
documented to be stricter (a padded segment, a ``crit`` header).
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from typing import Any

import jwt
import orjson
import pytest

from tidings.protocol.errors import BadToken
from tidings.protocol.tokens import (
    AUDIENCE,
    ISSUER,
    LEEWAY_SECONDS,
    HmacSha256,
    KeyRing,
    verify_push_token,
)

KEY = b"k" * 40
RING = KeyRing({"k1": KEY, "k2": b"q" * 40})


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(now: int, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "5",
        "prj": [3],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "abc",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def raw_token(header: dict[str, Any], payload: bytes, key: bytes = KEY) -> str:
    """A token from exact header fields and payload bytes, signed with ``key``."""
    head = b64(orjson.dumps(header))
    body = b64(payload)
    sig = b64(hmac.digest(key, f"{head}.{body}".encode(), "sha256"))
    return f"{head}.{body}.{sig}"


def signed(payload: dict[str, Any], **header: Any) -> str:
    body = json.dumps(payload, separators=(",", ":")).encode()  # any int, unlike orjson
    return raw_token({"alg": "HS256", "typ": "JWT", "kid": "k1", **header}, body)


def pyjwt_accepts(token: str) -> bool:
    """PyJWT's decision with the options the verifier passed it before, plus the
    protocol's own claim rules (checked the same way as before)."""
    try:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        key = RING.key(kid) if isinstance(kid, str) else None
        if key is None or header.get("alg") != "HS256":
            return False
        payload = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "nbf", "sub", "aud", "iss"]},
        )
    except jwt.PyJWTError:
        return False
    for name in ("exp", "nbf", "iat"):
        if type(payload[name]) is not int or not 0 <= payload[name] <= 2**53:
            return False
    prj, sub = payload.get("prj"), payload["sub"]
    if not isinstance(prj, list) or not all(type(p) is int and 0 < p <= 2**53 for p in prj):
        return False
    return sub.isascii() and sub.isdigit() and len(sub) <= 16


def cases(now: int) -> dict[str, str]:
    """Every case, its time claims around ``now``: built when a test runs, so the
    claims near the leeway's edges mean what they say however late that is."""
    return {
        "valid": signed(claims(now)),
        "valid-other-key": raw_token(
            {"alg": "HS256", "kid": "k2"}, orjson.dumps(claims(now)), key=b"q" * 40
        ),
        "kid-of-other-key": raw_token(
            {"alg": "HS256", "kid": "k1"}, orjson.dumps(claims(now)), b"q" * 40
        ),
        "kid-not-a-string": signed(claims(now), kid=1),
        "alg-lowercase": signed(claims(now), alg="hs256"),
        "alg-none-signed": signed(claims(now), alg="none"),
        "b64-true": signed(claims(now), b64=True),
        "b64-false": signed(claims(now), b64=False, crit=["b64"]),
        "aud-list-with-ours": signed(claims(now, aud=["x", AUDIENCE])),
        "aud-list-without-ours": signed(claims(now, aud=["x", "y"])),
        "aud-list-with-non-string": signed(claims(now, aud=[AUDIENCE, 1])),
        "aud-number": signed(claims(now, aud=7)),
        "aud-empty": signed(claims(now, aud="")),
        "iss-number": signed(claims(now, iss=1)),
        "iss-list": signed(claims(now, iss=[ISSUER])),
        "sub-number": signed(claims(now, sub=5)),
        "jti-number": signed(claims(now, jti=5)),
        "no-jti": signed(claims(now, jti=None)),
        "exp-at-leeway-edge": signed(claims(now, exp=now - LEEWAY_SECONDS - 2)),
        "exp-inside-leeway": signed(claims(now, exp=now - LEEWAY_SECONDS + 30)),
        "nbf-inside-leeway": signed(claims(now, nbf=now + LEEWAY_SECONDS - 30)),
        "nbf-future": signed(claims(now, nbf=now + 60)),
        "iat-future": signed(claims(now, iat=now + 60)),
        "exp-bool": signed(claims(now, exp=True)),
        "exp-null": signed(claims(now, exp=None) | {"exp": None}),
        "exp-huge": signed(claims(now, exp=2**64)),
        "exp-infinity": raw_token(
            {"alg": "HS256", "kid": "k1"},
            orjson.dumps(claims(now)).replace(str(now + 600).encode(), b"Infinity"),
        ),
        "payload-array": raw_token({"alg": "HS256", "kid": "k1"}, b"[1]"),
        "payload-not-json": raw_token({"alg": "HS256", "kid": "k1"}, b"{nope"),
        "payload-duplicate-sub": raw_token(
            {"alg": "HS256", "kid": "k1"}, orjson.dumps(claims(now))[:-1] + b',"sub":"x"}'
        ),
        "header-array": f"{b64(b'[]')}.{b64(orjson.dumps(claims(now)))}.{b64(b'x' * 32)}",
        "signature-truncated": signed(claims(now))[:-2],
        "signature-stray-bits": signed(claims(now))[:-1] + "B",
        "four-segments": signed(claims(now)) + ".x",
        "two-segments": signed(claims(now)).rsplit(".", 1)[0],
        "empty-signature": signed(claims(now)).rsplit(".", 1)[0] + ".",
        "non-ascii": signed(claims(now)) + "é",
        "whitespace": " " + signed(claims(now)),
        # Refused here, accepted by PyJWT (STRICTER).
        "padded-signature": signed(claims(now, jti="ab")) + "=",
        "crit-header": signed(claims(now), crit=["exp"], exp=1),
    }


#: Where the verifier refuses what PyJWT would accept (docs: tokens.py).
STRICTER = {"padded-signature", "crit-header"}
NAMES = sorted(cases(0))


def now() -> int:
    return int(time.time())


@pytest.mark.parametrize("name", NAMES)
def test_the_verifier_decides_as_pyjwt(name: str) -> None:
    token = cases(now())[name]
    try:
        verify_push_token(RING, token)
        ours = True
    except BadToken:
        ours = False
    if name in STRICTER:
        assert not ours
    else:
        assert ours == pyjwt_accepts(token), name


def test_the_claims_are_the_tokens() -> None:
    issued = now()
    got = verify_push_token(RING, cases(issued)["valid"])
    assert (got.user, got.projects, got.token_id) == (5, frozenset({3}), "abc")
    assert (got.issued_at, got.expires_at) == (issued, issued + 600)


def test_a_revoked_key_no_longer_verifies() -> None:
    """Rotation: a ring without the key refuses its tokens, however often they verified."""
    token = cases(now())["valid"]
    for _ in range(3):
        verify_push_token(RING, token)
    with pytest.raises(BadToken, match="unknown key id"):
        verify_push_token(KeyRing({"k2": b"q" * 40}), token)


@pytest.mark.parametrize("size", [32, 63, 64, 65, 200])
def test_the_prepared_hmac_is_hmac_sha256(size: int) -> None:
    """Keys shorter, as long as and longer than SHA-256's 64-byte block."""
    key = bytes(range(size % 256)) * (size // 256) + bytes(range(size % 256))
    for message in (b"", b"a.b", bytes(range(256)) * 5):
        assert HmacSha256(key).digest(message) == hmac.digest(key, message, "sha256")


def test_a_header_seen_before_is_checked_against_the_ring_of_each_call() -> None:
    """The header cache keeps only a parsed key id: a ring without that key refuses."""
    token = cases(now())["valid"]
    verify_push_token(RING, token)
    with pytest.raises(BadToken, match="unknown key id"):
        verify_push_token(KeyRing({"k9": KEY}), token)
    with pytest.raises(BadToken, match="Signature"):
        verify_push_token(KeyRing({"k1": b"z" * 40}), token)
