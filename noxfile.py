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
    # Not -q: one progress line per test file; pyproject's addopts add -rfEs (why each skip).
    session.run("pytest", "-m", "not slow", *session.posargs)


@nox.session(python=PY)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "actors", "trio_quorum", "tests")


@nox.session(python=PY)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the whole package: actors/ and every module of trio_quorum/."""
    session.install("-e", ".[test,dev]")
    session.run("mypy", "--strict", "actors", "trio_quorum")


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
    """Run one standalone server in the foreground: nox -s serve -- [zoo.cfg] [serve options].

    After installing, nox *replaces itself* with the server (``os.execv``): the
    PID a service manager, ``timeout`` or ``kill`` sees is the server's, so
    SIGTERM or Ctrl-C reaches it directly and it stops cleanly (flushing
    storage).  With ``session.run`` nox would die at once on SIGTERM and leave
    the server running without a parent, or SIGKILL it 0.5 s after Ctrl-C.
    Sessions listed after ``serve`` on the same nox command line do not run.
    """
    import os
    import sys

    session.install("-e", ".")
    try:
        program = os.path.join(session.bin, "trio-quorum")
    except ValueError:  # --no-venv: no bin directory of ours
        program = ""
    if not os.path.exists(program):
        program = sys.executable
        argv = [program, "-m", "trio_quorum", "serve", *session.posargs]
    else:
        argv = [program, "serve", *session.posargs]
    session.log(" ".join(argv) + "  (nox replaces itself with the server)")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(program, argv)
