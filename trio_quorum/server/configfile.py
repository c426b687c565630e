"""Reading a zoo.cfg, ``dataDir/myid`` and a ``dynamicConfigFile`` from disk:
the thin IO shell around :mod:`trio_quorum.config`.

Paths inside the file resolve as ZooKeeper resolves them: against the
process's working directory (``new File(path)``), not the file's directory.
"""

from __future__ import annotations

import os

from ..config import ConfigError, ConfigProblem, ServerConfig, parse_config, parse_properties

__all__ = ["load_config"]


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _last_value(text: str, name: str) -> tuple[int, str] | None:
    found = None
    for line, key, value in parse_properties(text):
        if key in (name, "zookeeper." + name) and value:
            found = (line, value)
    return found


def _file_in_the_way(path: str) -> str | None:
    """The nearest existing component of ``path`` (itself or a parent) when it is not a directory."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    return None if os.path.isdir(path) else path


def load_config(path: str | os.PathLike[str], *, cwd: str | None = None) -> tuple[ServerConfig, list[str]]:
    """Parse the zoo.cfg at ``path``; relative paths inside resolve against ``cwd``
    (default: the process's working directory, as ZooKeeper does).

    Raises:
        ConfigError: unreadable file, or invalid values (every problem, naming key and line).
    """
    try:
        text = _read(os.fspath(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {os.fspath(path)}: {exc}") from None
    base = os.path.abspath(cwd or os.getcwd())
    myid_text = None
    data_dir = _last_value(text, "dataDir")
    not_a_dir: list[ConfigProblem] = []
    for key in ("dataDir", "dataLogDir"):
        found = _last_value(text, key)
        blocker = _file_in_the_way(os.path.join(base, found[1])) if found is not None else None
        if found is not None and blocker is not None:
            not_a_dir.append(ConfigProblem(f"{blocker} is a file, not a directory", key, found[0]))
    if data_dir is not None and not not_a_dir:
        myid_path = os.path.join(base, data_dir[1], "myid")
        try:
            myid_text = _read(myid_path)
        except FileNotFoundError:
            myid_text = None  # standalone needs none; parse_config says when one is needed
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {myid_path}: {exc}", key="myid") from None
    dynamic_text = None
    unreadable: tuple[int, str] | None = None
    dynamic = _last_value(text, "dynamicConfigFile")
    if dynamic is not None:
        dynamic_path = os.path.normpath(os.path.join(base, dynamic[1]))
        try:
            dynamic_text = _read(dynamic_path)
        except (OSError, UnicodeDecodeError) as exc:
            unreadable = (dynamic[0], f"cannot read {dynamic_path}: {exc}")
    try:
        parsed = parse_config(text, cwd=base, myid_text=myid_text, dynamic_text=dynamic_text)
    except ConfigError as err:
        if not_a_dir:
            # A dataDir that is a file is the problem, not the myid it cannot hold.
            others = [p for p in err.problems if p.key != "myid"]
            raise ConfigError(problems=not_a_dir + others) from None
        if unreadable is None:
            raise
        # Say why the dynamic file was not read, in place of the parser's "was not read".
        line, why = unreadable
        problems = [
            ConfigProblem(why, "dynamicConfigFile", line) if p.key == "dynamicConfigFile" and p.line == line else p
            for p in err.problems
        ]
        raise ConfigError(problems=problems) from None
    if not_a_dir:
        raise ConfigError(problems=not_a_dir)
    return parsed
