"""The config DSL: YAML files with ``extends:``, ``${VAR}``, ``--set`` and units.

::

    raw = load(path, overrides=("strategies.0.profit_target=2%",))
    run = validate(raw, registry)          # -> RunConfig, or raises ConfigError
    print(dump_yaml(mask(raw.data)))       # what `bothost config show` prints

Every mistake in a config raises :class:`ConfigError`, whose text is ``FILE:LINE:COL: message``
plus a ``  hint:`` line. Plugin authors import the units (``Percent``, ``PositivePercent``,
``NonNegativePercent``, ``Duration``) for their pydantic config models from here.
"""

from .errors import ConfigError, Pos
from .loader import RawConfig, load
from .masking import dump_yaml, is_secret, mask
from .models import EngineSettings
from .positions import SourceMap
from .units import ConfigPath, Duration, NonNegativePercent, Percent, PositivePercent, checked_path
from .validator import RunConfig, Section, validate

__all__ = [
    "ConfigError",
    "ConfigPath",
    "Duration",
    "EngineSettings",
    "NonNegativePercent",
    "Percent",
    "Pos",
    "PositivePercent",
    "RawConfig",
    "RunConfig",
    "Section",
    "SourceMap",
    "checked_path",
    "dump_yaml",
    "is_secret",
    "load",
    "mask",
    "validate",
]
