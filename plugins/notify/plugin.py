"""Built-in notifiers: ``bell`` (the terminal bell) and ``apprise`` (100+ services by URL).

A notifier is an instance with an ``on_alert`` hook; the host calls every configured one when a
critical alert stops the bot (S1). A notifier failing must not hide the alert: it logs and moves on.
"""

from __future__ import annotations

import logging
import sys

from pydantic import BaseModel, ConfigDict, Field

from bothost.hookspecs import hookimpl

log = logging.getLogger("bothost.notify")


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


class AppriseNotifier:
    def __init__(self, config: AppriseConfig, env):
        self.config = config

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
