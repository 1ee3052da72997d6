"""TotpVerifier: RFC 6238 one-time codes as step-up proofs, on ``pyotp`` (the ``policy`` extra)."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from ._decisions.policy import Actor, StepUpProof
from ._errors import ConfigurationError, MissingExtraError

__all__ = ["TotpVerifier"]


def _pyotp() -> Any:
    try:
        import pyotp  # noqa: PLC0415 - an optional extra, loaded on first use
    except ImportError:
        raise MissingExtraError("TotpVerifier", extra="policy", package="pyotp") from None
    return pyotp


class TotpVerifier:
    """Accept a time-based one-time code (RFC 6238) from the actor's authenticator app.

    Each actor's base32 secret comes from ``secrets`` (a mapping or a lookup
    function; an actor without one cannot step up). A code is accepted in its
    own time step and ``valid_window`` steps either side (clock drift); the
    step is the proof's id, so the service refuses the same code twice.

    Args:
        secrets: Actor id -> base32 TOTP secret, or a function returning it (or ``None``).
        digits: Code length.
        interval: Seconds per time step.
        valid_window: Steps accepted before and after the current one.

    Raises:
        MissingExtraError: ``pyotp`` is not installed (``pip install "paykit-payments[policy]"``).
    """

    method = "totp"

    def __init__(
        self,
        secrets: Mapping[str, str] | Callable[[str], str | None],
        *,
        digits: int = 6,
        interval: int = 30,
        valid_window: int = 1,
    ) -> None:
        self._pyotp = _pyotp()
        if not 6 <= digits <= 10 or interval <= 0 or not 0 <= valid_window <= 10:
            raise ConfigurationError("TotpVerifier: digits 6-10, a positive interval, valid_window 0-10")
        self._lookup = secrets.get if isinstance(secrets, Mapping) else secrets
        self.digits = digits
        self.interval = interval
        self.valid_window = valid_window

    def __repr__(self) -> str:
        return f"TotpVerifier(digits={self.digits}, interval={self.interval}, valid_window={self.valid_window})"

    def verify(self, actor: Actor, proof: StepUpProof, at: datetime) -> str | None:
        """The time step the code belongs to (as text), or ``None`` for a wrong or expired code."""
        secret = self._lookup(actor.id)
        code = proof.code.strip() if isinstance(proof.code, str) else ""
        if not secret or len(code) != self.digits or not code.isdigit():
            return None
        totp = self._pyotp.TOTP(secret, digits=self.digits, interval=self.interval)
        for offset in range(-self.valid_window, self.valid_window + 1):
            moment = at + timedelta(seconds=offset * self.interval)
            if hmac.compare_digest(str(totp.at(moment)), code):
                return str(totp.timecode(moment))
        return None
