"""Reading a zoo.cfg and ``dataDir/myid`` from disk: the thin IO shell around :mod:`trio_quorum.config`."""

from __future__ import annotations

import os

from ..config import ConfigError, ServerConfig, parse_config, parse_properties

__all__ = ["load_config"]


def load_config(path: str | os.PathLike[str], *, cwd: str | None = None) -> tuple[ServerConfig, list[str]]:
    """Parse the zoo.cfg at ``path``; relative paths inside resolve against ``cwd``
    (default: the process's working directory, as ZooKeeper does).

    Raises:
        ConfigError: unreadable file, or an invalid value (naming key and line).
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {os.fspath(path)}: {exc}") from None
    base = os.path.abspath(cwd or os.getcwd())
    myid_text = None
    data_dir = None
    for _line, key, value in parse_properties(text):
        if key in ("dataDir", "zookeeper.dataDir") and value:
            data_dir = os.path.join(base, value)
    if data_dir is not None:
        try:
            with open(os.path.join(data_dir, "myid"), encoding="utf-8") as f:
                myid_text = f.read()
        except FileNotFoundError:
            myid_text = None
        except OSError as exc:
            raise ConfigError(f"cannot read {os.path.join(data_dir, 'myid')}: {exc}", key="myid") from None
    return parse_config(text, cwd=base, myid_text=myid_text)
