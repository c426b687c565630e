"""Nox sessions for trio-quorum: tests (default), lint, typecheck, bench, chaos, serve."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PY = "3.11"


@nox.session(python=PY)
def tests(session: nox.Session) -> None:
    """The default test run: unit, simulation and integration tests (< ~10 minutes)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", "-m", "not slow", *session.posargs)


@nox.session(python=PY)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "actors", "trio_quorum", "tests")


@nox.session(python=PY)
def typecheck(session: nox.Session) -> None:
    """mypy: strict on actors/ and on every sans-IO core."""
    session.install("-e", ".[test,dev]")
    session.run("mypy", "actors")
    session.run("mypy", "--strict", *SANS_IO_MODULES)


@nox.session(python=PY)
def bench(session: nox.Session) -> None:
    """Side-by-side benchmark against Apache ZooKeeper: nox -s bench [-- --quick | --big | --help].

    Writes docs/benchmarks.json and the generated tables of docs/benchmarks.md.
    A full run takes several minutes and saturates the machine's cores.
    """
    session.install("-e", ".")
    session.run("python", "-m", "trio_quorum.bench", *session.posargs)


@nox.session(python=PY)
def chaos(session: nox.Session) -> None:
    """Long crash / chaos runs (SIGKILL loops and friends)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", "-m", "slow", *session.posargs)


@nox.session(python=PY)
def serve(session: nox.Session) -> None:
    """Run one standalone server in the foreground: nox -s serve -- [zoo.cfg]."""
    session.install("-e", ".")
    session.run("trio-quorum", "serve", *session.posargs)


#: Modules declared sans-IO (also checked by tests/test_layering.py).
SANS_IO_MODULES = [
    "trio_quorum/jute.py",
    "trio_quorum/consts.py",
    "trio_quorum/data.py",
    "trio_quorum/txn.py",
]
