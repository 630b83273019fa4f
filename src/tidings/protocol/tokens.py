"""Push tokens: short-lived HS256 JWTs the app signs and push servers only verify.

Claims (docs/PROTOCOL.md): ``iss`` "tidings-app", ``aud`` "tidings-push", ``sub``
(user id as a string), ``prj`` (list of project ids the user may watch), ``iat``,
``nbf``, ``exp``, ``jti``; header ``kid`` names the key. Verification needs only
the shared keys: no call back to the app.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

import jwt
import orjson

from tidings.protocol.errors import BadToken

ISSUER = "tidings-app"
AUDIENCE = "tidings-push"
ALGORITHM = "HS256"

#: The environment variable that holds the key ring, for the app and push servers alike.
KEYS_VARIABLE = "TIDINGS_PUSH_KEYS"

#: Default lifetime; a client refreshes before ``exp`` when the push server warns it.
DEFAULT_TTL_SECONDS = 600

#: Tokens longer than this are refused before any parsing (they travel in URLs),
#: and never signed: that holds 1,000 project ids of 4 digits, 846 of 6, 538 of 10.
MAX_TOKEN_BYTES = 8192

#: Projects one token may name; bounds per-connection subscription state.
MAX_PROJECTS_PER_TOKEN = 1000

#: Clock skew tolerated on ``exp``/``nbf``/``iat``.
LEEWAY_SECONDS = 5

#: Integer claims (times, project ids) are at most this: exact in every JSON parser.
MAX_CLAIM_INT = 2**53

#: Claims a push token must carry (not null); ``prj`` is checked on its own.
_REQUIRED = ("exp", "iat", "nbf", "sub", "aud", "iss")


@dataclass(frozen=True, slots=True)
class PushClaims:
    user: int
    projects: frozenset[int]
    expires_at: float
    issued_at: float
    token_id: str


class KeyRing:
    """The shared HS256 keys by ``kid``; the first one signs, all of them verify.

    Rotation: add the new key second, deploy push servers, move it first, deploy
    the app, drop the old key after one token lifetime.
    """

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        for kid, key in keys.items():
            if not kid or len(key) < 32:
                raise ValueError(f"key {kid!r}: HS256 keys must be at least 32 bytes")
        self._keys = dict(keys)
        self._macs = {kid: HmacSha256(key) for kid, key in self._keys.items()}
        self.signing_kid = next(iter(self._keys))

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        """Parse ``kid1:secret1,kid2:secret2`` (the ``TIDINGS_PUSH_KEYS`` format)."""
        keys: dict[str, bytes] = {}
        for part in spec.split(","):
            kid, sep, secret = part.strip().partition(":")
            if not sep:
                raise ValueError("TIDINGS_PUSH_KEYS entries look like kid:secret")
            keys[kid] = secret.encode()
        return cls(keys)

    @classmethod
    def from_env(cls, env: Mapping[str, str], name: str = KEYS_VARIABLE) -> KeyRing:
        """The ring in ``TIDINGS_PUSH_KEYS``; ``ValueError`` naming the variable
        when it is unset or malformed."""
        spec = env.get(name, "").strip()
        if not spec:
            raise ValueError(f"{name} is not set (kid:secret[,kid:secret...])")
        try:
            return cls.parse(spec)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None

    @classmethod
    def generate(cls) -> KeyRing:
        return cls({"k" + secrets.token_hex(4): secrets.token_urlsafe(48).encode()})

    def spec(self) -> str:
        return ",".join(f"{kid}:{key.decode()}" for kid, key in self._keys.items())

    def key(self, kid: str) -> bytes | None:
        return self._keys.get(kid)

    def mac(self, kid: str) -> HmacSha256 | None:
        """The HMAC of key ``kid``, its key states prepared once."""
        return self._macs.get(kid)


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class HmacSha256:
    """HMAC-SHA256 (RFC 2104) with the key's inner and outer hash states computed
    once: each MAC then copies two SHA-256 states. ``hmac.digest`` builds an
    OpenSSL MAC context per call, most of a token's verify time in a reconnect
    storm (docs/PERFORMANCE.md, "Reconnect storms"); the bytes are the same
    (tests/protocol/test_push_token_verifier.py)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:  # the block size: longer keys are hashed first
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class TokenTooLarge(ValueError):
    """The projects asked for do not fit in one token (count or bytes)."""


def sign_push_token(
    ring: KeyRing,
    user: int,
    projects: list[int],
    *,
    now: float | None = None,
    ttl: float = DEFAULT_TTL_SECONDS,
) -> tuple[str, PushClaims]:
    if len(projects) > MAX_PROJECTS_PER_TOKEN:
        raise TokenTooLarge(f"a push token names at most {MAX_PROJECTS_PER_TOKEN} projects")
    issued = int(time.time() if now is None else now)
    claims = PushClaims(
        user=user,
        projects=frozenset(projects),
        issued_at=issued,
        expires_at=issued + int(ttl),
        token_id=secrets.token_urlsafe(12),
    )
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user),
        "prj": sorted(claims.projects),
        "iat": issued,
        "nbf": issued,
        "exp": int(claims.expires_at),
        "jti": claims.token_id,
    }
    kid = ring.signing_kid
    key = ring.key(kid)
    assert key is not None
    token = jwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": kid})
    if len(token) > MAX_TOKEN_BYTES:
        # Push servers refuse it unread: never hand one out.
        raise TokenTooLarge(
            f"a push token naming these {len(claims.projects)} projects would be "
            f"{len(token)} bytes, over the {MAX_TOKEN_BYTES} a push server accepts"
        )
    return token, claims


#: A compact JWS: base64url segments without padding (an empty signature is
#: refused by its algorithm, ``none``, not as malformed).
_COMPACT = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)")


#: The characters that may end a canonical base64url segment of length 2 or 3
#: modulo 4: those whose unused low bits are zero.
_LAST = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}
_PADDING = (b"", b"", b"==", b"=")
#: Byte tables: ``bytes.translate`` is one table lookup per byte, ``str.translate``
#: a dict lookup per character (~13 us for a token's payload, more than the MAC).
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _segment(text: str, name: str) -> bytes:
    """One base64url segment, decoded; only the canonical encoding of its bytes is
    accepted (no stray bits in the last character), as PyJWT does."""
    tail = len(text) % 4
    if tail == 1 or (tail and text[-1] not in _LAST[tail]):
        raise BadToken(f"malformed token: invalid {name} encoding")
    return binascii.a2b_base64(text.encode().translate(_FROM_URLSAFE) + _PADDING[tail])


#: Headers read, by their exact text, and the key id each names (a token's header
#: is the same for every token of a key). Only valid ones up to ``_HEADER_CHARS``
#: are kept, at most ``_MAX_HEADERS`` (cleared when full): no key material, only
#: what parsing those bytes gave, so rotation and every other check still apply.
_HEADERS: dict[str, str] = {}
_MAX_HEADERS = 256
_HEADER_CHARS = 256
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _kid(head: str) -> str:
    """The key id of a valid header: ``alg`` HS256, no critical extension."""
    header = _json_object(_segment(head, "header"), "header")
    if header.get("alg") != ALGORITHM:
        raise BadToken("token algorithm must be HS256")
    if "crit" in header or header.get("b64", True) is False:
        raise BadToken("malformed token: unsupported critical header")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise BadToken("unknown key id")
    if len(head) <= _HEADER_CHARS:
        if len(_HEADERS) >= _MAX_HEADERS:
            _HEADERS.clear()
        _HEADERS[head] = kid
    return kid


def _json_object(raw: bytes, name: str) -> dict[str, object]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # What orjson refuses and Python's json reads (``Infinity``, integers past
        # 64 bits), as PyJWT would: the claim checks then name the bad claim.
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            raise BadToken(f"malformed token: invalid {name} JSON") from None
    if not isinstance(value, dict):
        raise BadToken(f"malformed token: the {name} must be a JSON object")
    return value


def verify_push_token(ring: KeyRing, token: str, *, now: float | None = None) -> PushClaims:
    """Verify signature, ``kid``, algorithm, issuer, audience and time claims.

    Written out rather than through PyJWT's generic path, which cost most of a
    new connection's CPU in a reconnect storm (docs/PERFORMANCE.md, "Reconnect
    storms"). The checks are PyJWT's for HS256 with ``algorithms=["HS256"]``,
    ``audience``, ``issuer``, ``leeway`` and every claim below required, plus
    this protocol's own (docs/PROTOCOL.md §2), and stricter in two places: a
    padded segment and a ``crit`` header are refused (the app makes neither).
    The payload is parsed only once the signature is good. ``now`` (wall-clock
    seconds) defaults to the current time.
    """
    if len(token) > MAX_TOKEN_BYTES:
        raise BadToken("token too large")
    match = _COMPACT.fullmatch(token)
    if match is None:
        raise BadToken("malformed token: not three base64url segments")
    head, body = match.group(1, 2)
    kid = _HEADERS.get(head)
    if kid is None:
        kid = _kid(head)
    mac = ring.mac(kid)
    if mac is None:
        raise BadToken("unknown key id")
    # Compared encoded: only the canonical encoding of the right MAC matches.
    raw = token.encode()
    expected = binascii.b2a_base64(mac.digest(raw[: match.end(2)]), newline=False)
    if not hmac.compare_digest(expected.translate(_TO_URLSAFE).rstrip(b"="), raw[match.start(3) :]):
        raise BadToken("invalid token: Signature verification failed")
    payload = _json_object(_segment(body, "payload"), "payload")
    for name in _REQUIRED:
        if payload.get(name) is None:
            raise BadToken(f'invalid token: Token is missing the "{name}" claim')
    exp = _time_claim(payload, "exp")
    nbf = _time_claim(payload, "nbf")
    iat = _time_claim(payload, "iat")
    wall = time.time() if now is None else now
    if exp + LEEWAY_SECONDS <= wall:
        raise BadToken("token expired")
    if nbf - LEEWAY_SECONDS > wall:
        raise BadToken("token not yet valid (nbf)")
    if iat - LEEWAY_SECONDS > wall:
        raise BadToken("token not yet valid (iat)")
    if payload["iss"] != ISSUER:
        raise BadToken("invalid token: Invalid issuer")
    aud = payload["aud"]
    if aud != AUDIENCE:  # the app's own form passes every check below
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise BadToken("invalid token: Invalid audience claim format")
        if AUDIENCE not in audiences:
            raise BadToken("invalid token: Audience doesn't match")
    jti = payload.get("jti", "")
    if not isinstance(jti, str):
        raise BadToken("invalid token: 'jti' must be a string")
    prj = payload.get("prj")
    if (
        not isinstance(prj, list)
        or len(prj) > MAX_PROJECTS_PER_TOKEN
        or not all(type(p) is int and 0 < p <= MAX_CLAIM_INT for p in prj)
    ):
        raise BadToken("'prj' must be a list of project ids")
    sub = payload["sub"]
    if not isinstance(sub, str) or not sub.isascii() or not sub.isdigit() or len(sub) > 16:
        raise BadToken("'sub' must be a user id")
    return PushClaims(
        user=int(sub),
        projects=frozenset(prj),
        expires_at=float(exp),
        issued_at=float(iat),
        token_id=jti,
    )


def _time_claim(payload: Mapping[str, object], name: str) -> int:
    """``exp``/``nbf``/``iat`` as the app signs them: integers (not booleans, floats,
    strings or a JSON ``Infinity``), within 0..2**53."""
    value = payload.get(name)
    if type(value) is not int or not 0 <= value <= MAX_CLAIM_INT:
        raise BadToken(f"'{name}' must be an integer time")
    return value
