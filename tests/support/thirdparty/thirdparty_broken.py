"""A third-party plugin whose import fails (a dependency it needs is missing)."""

import thirdparty_dependency_that_is_not_installed  # noqa: F401  -> ImportError

from bothost.hookspecs import hookimpl


@hookimpl
def bothost_register(registry) -> None:  # pragma: no cover - never reached
    pass
