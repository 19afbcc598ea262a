"""Hiding secrets before a config is shown (``bothost config show``), and rendering YAML.

A value is secret when its key says so by name: ``key``, ``secret``, ``password``, ``token``,
``url``, ``urls`` (a notifier URL holds its token), or a name ending in ``_key``, ``_secret``,
``_password``, ``_token``, ``_url``, ``_urls`` (any case). Matching by
name, rather than by where the value came from, also hides secrets typed into the file.
"""

from __future__ import annotations

import datetime as dt
import enum
import io
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from ruamel.yaml import YAML

MASK = "***"
# Notifier URLs (`url`, `urls`) carry their service's token in the URL itself (apprise, webhooks).
_NAMES = ("key", "secret", "password", "token", "url", "urls")


def is_secret(key: Any) -> bool:
    name = str(key).lower()
    return name in _NAMES or name.endswith(tuple("_" + n for n in _NAMES))


def mask(data: Any) -> Any:
    """A deep copy of ``data`` with every secret value replaced by ``"***"``.

    Empty values (None, "", an empty list or mapping) are kept, so the output still shows
    that a secret is *missing*.
    """
    if isinstance(data, dict):
        return {k: (MASK if is_secret(k) and not _empty(v) else mask(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [mask(v) for v in data]
    return data


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and len(value) == 0)


def dump_yaml(data: Any) -> str:
    """Render plain data as block-style YAML, keys in their original order."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    yaml.indent(mapping=2, sequence=4, offset=2)  # `  - item`, as config files are written
    yaml.width = 4096  # do not fold long strings (a URL split over lines is hard to copy)
    buf = io.StringIO()
    yaml.dump(_plain(data), buf)
    return buf.getvalue()


def _plain(value: Any) -> Any:
    # Tolerate values from model_dump(): units and paths are shown as the user would write them.
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, (str, int)) else k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.timedelta):
        from .units import duration_text

        return duration_text(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    return value
