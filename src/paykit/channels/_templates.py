"""Message templates per notification kind, channel and locale, rendered with Jinja2.

Each locale has one text template and one HTML template per notification kind:
``{locale}/{kind}.txt`` holds the blocks ``subject`` and ``text`` (e-mail), ``sms``,
``whatsapp``, ``push_title`` and ``push_body``; ``{locale}/{kind}.html`` is the
HTML e-mail (autoescaped). English (``en``) and Arabic (``ar``, right to left)
are built in; an application overrides any file, or adds a locale, with a
mapping of names to sources, a directory, or a Jinja2 loader, searched first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from .._decisions import channels as dc
from .._errors import ConfigurationError, MissingExtraError
from .._models import Notification, NotificationKind

if TYPE_CHECKING:
    import jinja2

BUILTIN_DIR: Final = Path(__file__).parent / "templates"
BUILTIN_LOCALES: Final = ("en", "ar")

TEXT_BLOCKS: Final[Mapping[str, tuple[str, ...]]] = {
    "email": ("subject", "text"),
    "sms": ("sms",),
    "whatsapp": ("whatsapp",),
    "push": ("push_title", "push_body"),
}
"""The text blocks each channel kind renders; e-mail also renders the HTML template."""


@dataclass(frozen=True, slots=True)
class Message:
    """One rendered message: what a channel sends (never logged).

    Attributes:
        text: The plain text (e-mail body, SMS, WhatsApp or push body).
        subject: The e-mail subject.
        html: The HTML e-mail body.
        title: The push notification's title.
        locale: The locale it was rendered in.
    """

    text: str
    subject: str | None = None
    html: str | None = None
    title: str | None = None
    locale: str = "en"


def _jinja() -> Any:
    try:
        import jinja2  # noqa: PLC0415  (the channels extra is optional)
    except ImportError:
        raise MissingExtraError("paykit.channels templates", extra="channels", package="jinja2") from None
    return jinja2


class Templates:
    """The message templates of every channel: built-in English and Arabic, overridable by the application.

    Args:
        overrides: Templates searched before the built-in ones: a mapping of names
            (``"en/payment_succeeded.txt"``) to Jinja2 sources, a directory laid out
            like the built-in one, or any ``jinja2.BaseLoader``. An override replaces
            the whole built-in file of that name; a new locale directory adds a locale.
        builtin: Fall back to the built-in templates (``False``: only the overrides).

    Rendering is strict: an undefined variable is an error (``StrictUndefined``), and
    HTML templates are autoescaped. Channels call :meth:`check` when they are built,
    so a missing template, block or variable fails at startup, not at send time.

    Raises:
        MissingExtraError: Jinja2 is not installed (``pip install "paykit-payments[channels]"``).

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        overrides: Mapping[str, str] | str | os.PathLike[str] | jinja2.BaseLoader | None = None,
        *,
        builtin: bool = True,
    ) -> None:
        j2 = _jinja()
        loaders: list[jinja2.BaseLoader] = []
        if isinstance(overrides, Mapping):
            loaders.append(j2.DictLoader(dict(overrides)))
        elif isinstance(overrides, str | os.PathLike):
            loaders.append(j2.FileSystemLoader(os.fspath(overrides)))
        elif overrides is not None:
            loaders.append(overrides)
        if builtin:
            loaders.append(j2.FileSystemLoader(str(BUILTIN_DIR)))
        self._env = j2.Environment(
            loader=j2.ChoiceLoader(loaders),
            autoescape=j2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=j2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )

    def render(self, notification: Notification, *, channel: str, locale: str) -> Message:
        """Render ``notification`` for a channel kind (``"email"``, ``"sms"``, ``"whatsapp"``, ``"push"``).

        Raises:
            ConfigurationError: A template, block or variable is missing.
        """
        j2 = _jinja()
        context = dc.message_context(notification, locale=locale)
        kind = notification.kind.value
        try:
            text = self._env.get_template(f"{locale}/{kind}.txt")
            parts: dict[str, str] = {}
            for block in TEXT_BLOCKS[channel]:
                render = text.blocks.get(block)
                if render is None:
                    raise ConfigurationError(f"template {locale}/{kind}.txt has no block {block!r}")
                parts[block] = "".join(render(text.new_context(context))).strip()
            html = self._env.get_template(f"{locale}/{kind}.html").render(context) if channel == "email" else None
        except j2.TemplateNotFound as exc:
            raise ConfigurationError(f"no template {exc.name!r} for {channel} in locale {locale!r}") from None
        except j2.UndefinedError as exc:
            raise ConfigurationError(f"template for {kind} in locale {locale!r}: {exc.message}") from None
        except j2.TemplateSyntaxError as exc:
            raise ConfigurationError(f"template {exc.name!r} line {exc.lineno}: {exc.message}") from None
        if channel == "email":
            return Message(text=parts["text"], subject=parts["subject"], html=html, locale=locale)
        if channel == "push":
            return Message(text=parts["push_body"], title=parts["push_title"], locale=locale)
        return Message(text=parts[channel], locale=locale)

    def check(self, *, channel: str, kinds: Iterable[NotificationKind], locales: Iterable[str]) -> None:
        """Render every kind in every locale for ``channel`` with a sample notification.

        Raises:
            ConfigurationError: A template, block or variable is missing, or a template does not parse.
        """
        if channel not in TEXT_BLOCKS:
            raise ConfigurationError(f"no templates for channel kind {channel!r}")
        at = datetime(2026, 1, 1, tzinfo=UTC)
        for kind in kinds:
            sample = dc.sample_notification(NotificationKind(kind), at=at)
            for locale in locales:
                self.render(sample, channel=channel, locale=locale)
