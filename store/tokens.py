"""Access tokens: RS256 JWTs signed with one RSA key, published as a JWKS.

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
from config.secrets import Keep

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

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._jwk]}


def load_signing_key(configured: str | None, keep: Keep) -> SigningKey:
    """JWT_PRIVATE_KEY, else one generated once and kept in the database (`keep`).

    Raises ValueError with a one-line reason when the key is unusable."""
    if configured:
        # A PEM pasted into a one-line config var arrives with literal "\\n"s.
        return SigningKey(configured.replace("\\n", "\n"))
    return SigningKey(keep("jwt_private_key.pem", _generate_pem))
