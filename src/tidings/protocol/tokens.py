"""Push tokens: short-lived HS256 JWTs the app signs and push servers only verify.

Claims (docs/PROTOCOL.md): ``iss`` "tidings-app", ``aud`` "tidings-push", ``sub``
(user id as a string), ``prj`` (list of project ids the user may watch), ``iat``,
``nbf``, ``exp``, ``jti``; header ``kid`` names the key. Verification needs only
the shared keys: no call back to the app.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

import jwt

from tidings.protocol.errors import BadToken

ISSUER = "tidings-app"
AUDIENCE = "tidings-push"
ALGORITHM = "HS256"

#: Default lifetime; a client refreshes before ``exp`` when the push server warns it.
DEFAULT_TTL_SECONDS = 600

#: Tokens longer than this are refused before any parsing (they travel in URLs).
MAX_TOKEN_BYTES = 8192

#: Projects one token may name; bounds per-connection subscription state.
MAX_PROJECTS_PER_TOKEN = 1000

#: Clock skew tolerated on ``exp``/``nbf``/``iat``.
LEEWAY_SECONDS = 5


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
    def generate(cls) -> KeyRing:
        return cls({"k" + secrets.token_hex(4): secrets.token_urlsafe(48).encode()})

    def spec(self) -> str:
        return ",".join(f"{kid}:{key.decode()}" for kid, key in self._keys.items())

    def key(self, kid: str) -> bytes | None:
        return self._keys.get(kid)


def sign_push_token(
    ring: KeyRing,
    user: int,
    projects: list[int],
    *,
    now: float | None = None,
    ttl: float = DEFAULT_TTL_SECONDS,
) -> tuple[str, PushClaims]:
    if len(projects) > MAX_PROJECTS_PER_TOKEN:
        raise ValueError(f"a push token names at most {MAX_PROJECTS_PER_TOKEN} projects")
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
    return token, claims


def verify_push_token(ring: KeyRing, token: str, *, now: float | None = None) -> PushClaims:
    """Verify signature, ``kid``, algorithm, issuer, audience and time claims."""
    if len(token) > MAX_TOKEN_BYTES:
        raise BadToken("token too large")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise BadToken(f"malformed token: {exc}") from None
    if header.get("alg") != ALGORITHM:
        raise BadToken("token algorithm must be HS256")
    kid = header.get("kid")
    key = ring.key(kid) if isinstance(kid, str) else None
    if key is None:
        raise BadToken("unknown key id")
    options: dict[str, object] = {"require": ["exp", "iat", "nbf", "sub", "aud", "iss"]}
    if now is not None:
        options["verify_exp"] = False
        options["verify_nbf"] = False
        options["verify_iat"] = False
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY_SECONDS,
            options=options,  # type: ignore[arg-type]
        )
    except jwt.ExpiredSignatureError:
        raise BadToken("token expired") from None
    except jwt.PyJWTError as exc:
        raise BadToken(f"invalid token: {exc}") from None
    exp, nbf = payload["exp"], payload["nbf"]
    if now is not None:
        if exp + LEEWAY_SECONDS <= now:
            raise BadToken("token expired")
        if nbf - LEEWAY_SECONDS > now:
            raise BadToken("token not yet valid")
    prj = payload.get("prj")
    if (
        not isinstance(prj, list)
        or len(prj) > MAX_PROJECTS_PER_TOKEN
        or not all(type(p) is int and p > 0 for p in prj)
    ):
        raise BadToken("'prj' must be a list of project ids")
    sub = payload["sub"]
    if not isinstance(sub, str) or not sub.isdigit():
        raise BadToken("'sub' must be a user id")
    return PushClaims(
        user=int(sub),
        projects=frozenset(prj),
        expires_at=float(exp),
        issued_at=float(payload["iat"]),
        token_id=str(payload.get("jti", "")),
    )
