"""Access tokens: RS256 JWTs signed with an RSA key, whose public half is published in
the JWKS (store.signing_keys keeps several while a rotation settles).

Verification pins RS256 (so `alg: none` and HS256-with-the-public-key are refused),
requires `exp`, `iat`, `iss`, `aud`, `sub` and `sid`, and checks the `kid`. Whether
the session behind `sid` is still live is the caller's database check. Refresh
tokens are opaque random strings, stored only as SHA-256 hashes (right for
high-entropy secrets; bcrypt is for what people choose).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from actorbase.errors import Unauthenticated

ISSUER = "actorbase"
AUDIENCE = "actorbase"
ALGORITHM = "RS256"
MIN_KEY_BITS = 2048
_REQUIRED = ["exp", "iat", "iss", "aud", "sub", "sid"]


def opaque_token() -> str:
    """A 256-bit random token for refresh and MFA challenges."""
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """How an opaque token is stored: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _generate_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=MIN_KEY_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


class SigningKey:
    """The RSA key that signs access tokens, and its public half for verifiers."""

    def __init__(self, private_pem: str) -> None:
        try:
            key = serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
        except (ValueError, TypeError, UnicodeEncodeError) as exc:
            raise ValueError(f"not an unencrypted PEM private key ({exc})") from None
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < MIN_KEY_BITS:
            raise ValueError(f"must be an RSA key of at least {MIN_KEY_BITS} bits")
        self._private = key
        self._public = key.public_key()
        jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._public))
        # RFC 7638 thumbprint: stable across restarts and processes sharing the key.
        public = {k: jwk[k] for k in ("e", "kty", "n")}
        canonical = json.dumps(public, separators=(",", ":"))
        self.kid = (
            base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        self._jwk = {**public, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}

    def sign(
        self,
        *,
        user_id: str,
        session_id: str,
        role: str,
        claims: dict[str, Any],
        now: int,
        ttl: int,
    ) -> str:
        """An access token for one session; `now` and `ttl` in seconds."""
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user_id,
            "sid": session_id,
            "role": role,
            "claims": claims,
            "iat": now,
            "exp": now + ttl,
        }
        return jwt.encode(payload, self._private, algorithm=ALGORITHM, headers={"kid": self.kid})

    def verify(self, token: str) -> dict[str, Any]:
        """The payload of a token this key signed and that has not expired.

        Raises Unauthenticated for anything else, whatever the reason."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("kid") != self.kid:
                raise Unauthenticated("Invalid token")
            payload = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": _REQUIRED},
            )
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            raise Unauthenticated("Invalid or expired token") from None
        if not (
            isinstance(payload.get("sub"), str)
            and isinstance(payload.get("sid"), str)
            and isinstance(payload.get("role"), str)
            and isinstance(payload.get("claims"), dict)
        ):
            raise Unauthenticated("Invalid token")
        return payload

    @property
    def jwk(self) -> dict[str, Any]:
        """The public key as a JWKS entry."""
        return self._jwk


def kid_of(token: str) -> str:
    """The `kid` in a token's header, which picks the key that verifies it. Raises
    Unauthenticated for a token without one (actorbase has always set it)."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except (jwt.PyJWTError, ValueError, TypeError):
        raise Unauthenticated("Invalid or expired token") from None
    if not isinstance(kid, str):
        raise Unauthenticated("Invalid token")
    return kid
