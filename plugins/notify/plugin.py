"""Built-in notifiers: ``bell`` (the terminal bell) and ``apprise`` (100+ services by URL).

A notifier is an instance with an ``on_alert`` hook; the host calls every configured one when a
critical alert stops the bot (S1). A notifier failing must not hide the alert: it logs and moves on.
"""

from __future__ import annotations

import logging
import re
import sys
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field

from bothost.hookspecs import hookimpl

log = logging.getLogger("bothost.notify")

BOTHOST_API = 1  # the bothost plugin API this module was written for (bothost.API_VERSION)


class BellConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BellNotifier:
    def __init__(self, config: BellConfig, env):
        self.stream = sys.stderr

    @hookimpl
    def on_alert(self, ctx, alert) -> None:
        self.stream.write("\a")
        self.stream.flush()


class AppriseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(min_length=1, description="apprise URLs (they usually hold a token: never logged)")
    title_prefix: str = "bothost"


def secret_parts(url: str) -> set[str]:
    """What of a notifier URL must never be shown: the URL itself and every piece of it that
    can be a token (apprise puts them in the user, password, host, path or query:
    ``discord://ID/TOKEN``, ``tgram://BOT_TOKEN/CHAT``, ``json://user:pass@host/path?key=TOKEN``).
    Pieces with a dot (host names, addresses) and short ones (``api``, ``v1``, a port) are kept."""
    parts = {url, unquote(url)}
    body = url.split("://", 1)[-1]
    for piece in re.split(r"[/:@?&=#,+]+", body):
        for form in (piece, unquote(piece)):
            if len(form) >= 6 and "." not in form:
                parts.add(form)
    return {p for p in parts if p}


class _Redact(logging.Filter):
    """On the host's log handlers: any record (apprise's, urllib3's, ours) that would show a
    secret piece shows ``***`` instead. apprise logs its URLs, path included, at debug level
    (``bothost run -v``) and an unparseable one at error level; urllib3 logs request paths."""

    def __init__(self) -> None:
        super().__init__("bothost.redact")
        self.pieces: list[str] = []

    def add(self, pieces) -> None:
        self.pieces = sorted(set(self.pieces) | set(pieces), key=len, reverse=True)

    def _clean(self, text: str) -> str:
        for piece in self.pieces:
            if piece in text:
                text = text.replace(piece, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot format itself: logging reports that; its text is still cleaned
            message = str(record.msg)
        cleaned = self._clean(message)
        if record.exc_info:
            trace = logging.Formatter().formatException(record.exc_info)
            if self._clean(trace) != trace:
                cleaned += "\n" + self._clean(trace)
                record.exc_info, record.exc_text = None, None
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


REDACT = _Redact()


def redact_in_logs(pieces) -> None:
    """Hide ``pieces`` from every record the host's handlers write (the run log, the terminal)."""
    REDACT.add(pieces)
    for handler in logging.getLogger().handlers:
        if REDACT not in handler.filters:
            handler.addFilter(REDACT)


class AppriseNotifier:
    def __init__(self, config: AppriseConfig, env):
        self.config = config
        redact_in_logs(p for url in config.urls for p in secret_parts(url))

    @hookimpl
    def on_alert(self, ctx, alert) -> None:
        import apprise

        sender = apprise.Apprise()
        for url in self.config.urls:
            sender.add(url)
        try:
            ok = sender.notify(title=f"{self.config.title_prefix}: {alert.title}", body=alert.render())
        except Exception as exc:  # a broken notifier must not hide the alert itself
            ok = False
            log.error("apprise notifier failed: %s", type(exc).__name__)
        if not ok:
            log.error("apprise could not deliver the alert to every URL (URLs are not logged: they hold secrets)")


@hookimpl
def bothost_register(registry) -> None:
    registry.add_notifier("bell", BellConfig, BellNotifier, summary="ring the terminal bell")
    registry.add_notifier("apprise", AppriseConfig, AppriseNotifier, summary="send alerts through apprise URLs")
