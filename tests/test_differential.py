"""Differential test: the same client operations against Apache ZooKeeper 3.8.0 and trio-quorum.

Hypothesis generates sequences of creates (persistent/ephemeral/sequential),
sets, deletes, reads, ACL changes and multi transactions; both servers run
each sequence under a fresh root through kazoo, and the normalised outcomes
(results, error classes, Stat fields with zxids relative to the root, the
final subtree) must be equal.  Only wall-clock times and session ids are
normalised away, so this also checks that failed writes consume zxids exactly
as ZooKeeper's do.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from kazoo.client import KazooClient

from tests.differential_ops import operations, run_ops
from tests.support.apache_zk import apache_zookeeper
from tests.support.server import ServerProcess, write_cfg

pytestmark = pytest.mark.zookeeper


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    base = tmp_path_factory.mktemp("differential")
    with apache_zookeeper(base / "zk-data") as zk:
        tq_dir = base / "tq"
        tq_dir.mkdir()
        with ServerProcess(write_cfg(tq_dir)) as tq:
            ref = KazooClient(hosts=zk.hosts, timeout=10)
            ours = KazooClient(hosts=tq.hosts, timeout=10)
            ref.start(timeout=20)
            ours.start(timeout=20)
            try:
                yield ref, ours
            finally:
                ref.stop()
                ours.stop()
                ref.close()
                ours.close()


_counter = itertools.count()


def _check(clients, ops):
    ref, ours = clients
    root = f"/d{next(_counter)}"
    expected = run_ops(ref, root, ops)
    actual = run_ops(ours, root, ops)
    assert actual == expected


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(ops=operations)
def test_same_outcomes_as_zookeeper(clients, ops):
    _check(clients, ops)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=operations)
def test_same_outcomes_as_zookeeper_long(clients, ops):
    _check(clients, ops)
