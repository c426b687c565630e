"""sessions: ids, passwords (bit-exact java.util.Random), timeouts, expiry."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_quorum.core.sessions import (
    JavaRandom,
    SessionTracker,
    initial_session_id,
    session_password,
)
from trio_quorum.protocol.consts import EPHEMERAL_CONTAINER, Err, KeeperError

# Vectors obtained by compiling and running this Java 17 program with javac/java on the
# development machine (OpenJDK 17, java.util.Random):
#   byte[] b = new byte[16]; new Random(id ^ 0xB3415C00L).nextBytes(b);   // per id
#   new Random(42L).nextBytes(new byte[7]);
#   Random r = new Random(12345L); r.nextInt(); r.nextInt(); r.nextLong();
#   long next = (1700000000123L << 24) >>> 8; next |= (sid << 56);            // per sid
JAVA_PASSWORDS = {
    0: "f22acd4a97e69d6d20a49bb638eadb38",
    1: "054cc74a37327db215e702e20c73f005",
    281474976710657: "054cc74a37327db215e702e20c73f005",
    72068705860517888: "99540115b2ac339b9f3f41ba4b39270b",
    -1: "20f62cb5648dc2d771471c8a2486a9ee",
    9223372036854775807: "20f62cb5648dc2d771471c8a2486a9ee",
    -9223372036854775807: "054cc74a37327db215e702e20c73f005",
    -72037578039584068: "e673bc9940b4e7724864ecd8054f6ff4",
    72057594037927936: "f22acd4a97e69d6d20a49bb638eadb38",
}
JAVA_SESSION_IDS = {
    0: 39353605970132992,
    1: 111411200008060928,
    5: 399641576159772672,
    255: -32703988067794944,
}


@pytest.mark.parametrize(("sid", "hexpw"), JAVA_PASSWORDS.items())
def test_password_matches_java(sid: int, hexpw: str) -> None:
    assert session_password(sid).hex() == hexpw
    assert SessionTracker.password(sid) == bytes.fromhex(hexpw)


def test_java_random_streams() -> None:
    assert JavaRandom(42).next_bytes(7).hex() == "359d41baf78afe"
    r = JavaRandom(12345)
    assert [r.next_int(), r.next_int(), r.next_long()] == [
        1553932502,
        -2090749135,
        -1236052134575208584,
    ]


@pytest.mark.parametrize(("server_id", "expected"), JAVA_SESSION_IDS.items())
def test_session_id_formula_matches_java(server_id: int, expected: int) -> None:
    assert initial_session_id(server_id, 1700000000123) == expected


def test_container_marker_is_never_a_session_id() -> None:
    # server id 128 with the time bits all zero would give Long.MIN_VALUE.
    assert initial_session_id(128, 0) == EPHEMERAL_CONTAINER + 1


@given(st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**16 - 1))
def test_password_depends_on_low_48_seed_bits_only(sid: int, high: int) -> None:
    # java.util.Random keeps a 48-bit seed: ids differing only above bit 47 share a password.
    other = ((sid & ((1 << 48) - 1)) | (high << 48)) - (1 << 64 if high >> 15 else 0)
    assert session_password(sid) == session_password(other)
    assert len(session_password(sid)) == 16


@pytest.mark.skipif(
    shutil.which("javac") is None or shutil.which("java") is None, reason="needs a JDK"
)
def test_password_against_live_java(tmp_path) -> None:
    ids = [3, -5, 0x0102030405060708, 0x7EADBEEF12345678, -0x1234567]
    src = tmp_path / "P.java"
    src.write_text(
        "public class P { public static void main(String[] a) { for (String s : a) {"
        " long id = Long.parseLong(s); byte[] b = new byte[16];"
        " new java.util.Random(id ^ 0xB3415C00L).nextBytes(b); StringBuilder o = new StringBuilder();"
        ' for (byte x : b) o.append(String.format("%02x", x)); System.out.println(o); } } }'
    )
    subprocess.run(["javac", str(src)], check=True, timeout=60, cwd=tmp_path)
    out = subprocess.run(
        ["java", "-cp", str(tmp_path), "P", *map(str, ids)],
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out == [session_password(i).hex() for i in ids]


def test_ids_increment_and_stay_signed() -> None:
    t = SessionTracker(1, now=1700000000123, tick_time=2000)
    a = t.create_session(6000, now=0)
    b = t.create_session(6000, now=0)
    assert a == JAVA_SESSION_IDS[1] and b == a + 1
    assert a >> 56 == 1
    t.next_session_id = 2**63 - 1
    assert t.allocate_session_id() == 2**63 - 1
    assert t.next_session_id == EPHEMERAL_CONTAINER + 1  # wrapped, skipping the marker


def test_timeout_negotiation_clamps() -> None:
    t = SessionTracker(0, now=0, tick_time=2000)
    assert (t.min_session_timeout, t.max_session_timeout) == (4000, 40000)
    assert t.negotiate_timeout(1) == 4000
    assert t.negotiate_timeout(10_000) == 10_000
    assert t.negotiate_timeout(10**9) == 40000
    t2 = SessionTracker(0, now=0, tick_time=2000, min_session_timeout=100, max_session_timeout=500)
    assert t2.negotiate_timeout(50) == 100 and t2.negotiate_timeout(600) == 500
    with pytest.raises(ValueError):
        SessionTracker(0, now=0, min_session_timeout=10, max_session_timeout=5)


def test_touch_expire_close_lifecycle() -> None:
    t = SessionTracker(0, now=0, tick_time=1000)
    sid = t.create_session(3000, now=0)
    assert t.next_expiration_time() == 4000
    assert t.touch(sid, now=2500)  # -> bucket 6000
    assert t.expire(5999) == []
    assert t.expire(6000) == [sid]
    assert t.is_closing(sid)
    assert not t.touch(sid, now=6001)  # closing sessions cannot be touched back to life
    with pytest.raises(KeeperError) as ei:
        t.check_session(sid)
    assert ei.value.code == Err.SESSIONEXPIRED
    assert t.remove(sid) and sid not in t
    with pytest.raises(KeeperError) as ei:
        t.check_session(sid)
    assert ei.value.code == Err.UNKNOWNSESSION


def test_check_session_owner_and_moved() -> None:
    t = SessionTracker(0, now=0)
    sid = t.create_session(6000, now=0)
    t.check_session(sid, owner="cnxn-1")  # adopts the first owner
    t.check_session(sid, owner="cnxn-1")
    with pytest.raises(KeeperError) as ei:
        t.check_session(sid, owner="cnxn-2")
    assert ei.value.code == Err.SESSIONMOVED
    t.set_owner(sid, "cnxn-2")
    t.check_session(sid, owner="cnxn-2")


def test_revalidate_checks_password_and_liveness() -> None:
    t = SessionTracker(0, now=0, tick_time=1000)
    sid = t.create_session(2000, now=0)
    assert not t.revalidate(sid, b"\x00" * 16, now=100)
    assert t.revalidate(sid, session_password(sid), now=1500, owner="c2")
    assert t.get(sid).owner == "c2"
    assert t.expire(3000) == []  # the revalidate touched it to bucket 4000
    assert t.expire(4000) == [sid]
    assert not t.revalidate(sid, session_password(sid), now=4001)
    assert not t.revalidate(sid + 1, session_password(sid + 1), now=4001)  # unknown


def test_set_closing_stops_expiry_and_touches() -> None:
    t = SessionTracker(0, now=0, tick_time=1000)
    sid = t.create_session(2000, now=0)
    assert t.set_closing(sid)
    assert t.next_expiration_time() is None
    assert t.expire(10**6) == []  # already closing: the closeSession is on its way
    assert not t.set_closing(sid + 1)


def test_restore_and_view() -> None:
    t = SessionTracker(0, now=0, tick_time=1000)
    a = t.create_session(2000, now=0)
    b = t.create_session(5000, now=0)
    table = t.session_timeouts()
    assert table == {a: 2000, b: 5000}
    r = SessionTracker(0, now=0, tick_time=1000)
    r.restore(table, now=10_000)
    v = r.view()
    assert v.global_sessions == 2
    assert v.expiry_buckets == {13_000: (a,), 16_000: (b,)}
    assert v.timeouts == table and v.closing == frozenset()
    assert r.expire(13_000) == [a]
    assert r.view().closing == frozenset({a})


def test_track_session_is_idempotent_refresh() -> None:
    t = SessionTracker(0, now=0, tick_time=1000)
    assert t.track_session(77, 3000, now=0)
    assert not t.track_session(77, 3000, now=5000)
    assert t.view().expiry_buckets == {9000: (77,)}
