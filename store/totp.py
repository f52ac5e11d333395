"""TOTP (RFC 6238, via pyotp) and recovery codes.

A code is matched to the time step it belongs to, one step of clock drift either
way; the caller stores the last accepted step so no step is accepted twice.
"""

from __future__ import annotations

import hmac
import re
import secrets

import pyotp

ISSUER = "actorbase"
STEP_SECONDS = 30
RECOVERY_CODES = 10
_CODE_RE = re.compile(r"^[0-9]{6}$")
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud safely


def new_secret() -> str:
    return pyotp.random_base32()


def otpauth_url(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step (now ±1) whose code is `code`, compared in constant time."""
    if not _CODE_RE.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now // STEP_SECONDS)
    found = None
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def new_recovery_codes() -> list[str]:
    """Ten single-use codes of ≈79 bits each, shown once as xxxx-xxxx-xxxx-xxxx."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


def normalize_recovery_code(code: str) -> str:
    """What is hashed: lowercase, without the dashes and spaces people type."""
    return re.sub(r"[\s-]", "", code).lower()
