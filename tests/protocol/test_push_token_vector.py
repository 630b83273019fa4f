"""The push token vector (tests/vectors/push_token.json): a ``TIDINGS_PUSH_KEYS``
secret is used as the UTF-8 bytes of its text, never base64-decoded, checked
with a bare HMAC as a verifier in another language would."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from tidings.protocol.errors import BadToken
from tidings.protocol.tokens import KeyRing, sign_push_token, verify_push_token

VECTOR: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "push_token.json").read_text()
)


def hmac_ok(token: str, key: bytes) -> bool:
    signed, _, signature = token.rpartition(".")
    mac = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode() == signature


def test_the_key_is_the_secrets_text_and_the_vector_token_verifies_to_its_claims() -> None:
    ring = KeyRing.parse(VECTOR["keys"])
    key = bytes.fromhex(VECTOR["key_utf8_hex"])
    assert ring.key("k1") == key == VECTOR["keys"].split(":", 1)[1].encode()
    assert hmac_ok(VECTOR["token"], key)
    claims = verify_push_token(ring, VECTOR["token"], now=VECTOR["now"])
    expected = VECTOR["claims"]
    assert claims.user == int(expected["sub"]) and claims.projects == set(expected["prj"])
    assert (claims.issued_at, claims.expires_at) == (expected["iat"], expected["exp"])
    assert claims.token_id == expected["jti"]


def test_a_token_signed_with_the_base64_decoded_secret_is_refused() -> None:
    ring = KeyRing.parse(VECTOR["keys"])
    token = VECTOR["refused"]["signed_with_base64_decoded_key"]
    decoded = base64.b64decode(VECTOR["keys"].split(":", 1)[1])
    assert hmac_ok(token, decoded)
    with pytest.raises(BadToken):
        verify_push_token(ring, token, now=VECTOR["now"])


def test_the_app_signs_with_the_secrets_text() -> None:
    ring = KeyRing.parse(" " + VECTOR["keys"] + " ")
    token, _claims = sign_push_token(ring, 7, [3, 42], now=VECTOR["now"])
    assert hmac_ok(token, bytes.fromhex(VECTOR["key_utf8_hex"]))
