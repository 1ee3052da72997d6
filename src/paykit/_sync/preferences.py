# Generated from src/paykit/_async/preferences.py by scripts/unasync.py: do not edit.
"""Per-user notification preferences: which channels for which kinds, opt-out, locale."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .._decisions import channels as dc
from .._decisions import common as d
from .._decisions.policy import Actor
from .._log import get_logger
from .._models import NotificationKind, NotificationPreferences
from ._part import _Part

log = get_logger("paykit.notify")


class _Preferences(_Part):
    def set_notification_preferences(
        self,
        user_id: str,
        *,
        channels: Mapping[NotificationKind | str, Iterable[str]] | None = None,
        opted_out: bool = False,
        locale: str | None = None,
        actor: Actor | str | None = None,
    ) -> NotificationPreferences:
        """Store a user's notification preferences, replacing earlier ones, and audit the change.

        Channels (:mod:`paykit.channels`) read them at send time. No contact detail is
        stored: the application's contact resolver supplies those.

        Args:
            user_id: Whose preferences.
            channels: Per notification kind, the channel names the user wants it on (``"email"``,
                ``"sms"``, ``"whatsapp"``, ``"push"``...); kinds not listed go to every channel,
                an empty list silences a kind.
            opted_out: Silence every notification on every channel.
            locale: The language of the user's messages (``"en"``, ``"ar"``...); ``None`` takes
                each channel's default.
            actor: Who made the change, for the audit trail.

        Returns:
            The stored preferences.

        Raises:
            InvalidRequestError: An unknown kind, or a bad channel name, locale or user id.

        .. versionadded:: 0.2.0
        """
        prefs = dc.preferences(user_id, channels=channels, opted_out=opted_out, locale=locale, at=self._engine.now())
        storage = self._engine.storage
        storage.save_notification_preferences(prefs)
        storage.append_audit([dc.preferences_audit(prefs, actor=self._actor(actor))])
        log.info("notification preferences set", user_id=user_id, opted_out=prefs.opted_out)
        return prefs

    def get_notification_preferences(self, user_id: str) -> NotificationPreferences | None:
        """A user's stored notification preferences, or ``None`` when none were set (every channel, defaults).

        .. versionadded:: 0.2.0
        """
        d.check_id(user_id, "user_id")
        return self._engine.storage.get_notification_preferences(user_id)
