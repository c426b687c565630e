"""zoo.cfg parsing (sans-IO): ZooKeeper 3.8's ``QuorumPeerConfig`` keys and rules.

:func:`parse_config` takes the *text* of a zoo.cfg (java.util.Properties
syntax), the directory relative paths resolve against, the text of
``dataDir/myid`` and of a ``dynamicConfigFile`` when there are such files, and
returns a :class:`ServerConfig` plus warnings.  Reading files is the caller's
business (``trio_quorum.server.configfile``).

Modules: :mod:`.model` (what a parsed config is, the errors), :mod:`.properties`
(the file syntax), :mod:`.values` (value parsers), :mod:`.keys` (the key
table: one row per key), :mod:`.parse` (the line pass and the whole-file rules).

Invariants:

* Every problem of a config is reported at once: :class:`ConfigError` carries
  them all (``problems``), each naming its key and line; nothing here raises
  anything else for bad input.
* Keys that do not apply here are accepted, listed in
  ``ServerConfig.ignored_keys`` and among the warnings (logged once); unknown
  keys too (ZooKeeper stores them as system properties and ignores them).
* No ``server.N`` lines, or one voter with standaloneEnabled, means
  standalone; otherwise ``ServerConfig.quorum`` describes the ensemble.
"""

from __future__ import annotations

from .keys import KEYS, Key, default_of
from .model import (
    ALL_4LW,
    DEFAULT_4LW_WHITELIST,
    ConfigError,
    ConfigProblem,
    IgnoredKey,
    QuorumConfig,
    QuorumServer,
    ServerConfig,
)
from .parse import default_config, parse_config
from .properties import parse_properties

__sans_io__ = True

__all__ = [
    "ALL_4LW",
    "DEFAULT_4LW_WHITELIST",
    "KEYS",
    "ConfigError",
    "ConfigProblem",
    "IgnoredKey",
    "Key",
    "QuorumConfig",
    "QuorumServer",
    "ServerConfig",
    "default_config",
    "default_of",
    "parse_config",
    "parse_properties",
]
