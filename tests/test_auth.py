"""auth: digest / ip / super providers, ACL id validation, whoAmI."""

from __future__ import annotations

import base64
import hashlib

import pytest

from trio_quorum.core.acl import SUPER_ID, check, digest_id
from trio_quorum.core.auth import (
    AuthProvider,
    AuthRegistry,
    ClientInfo,
    java_set_order,
    java_split,
    valid_digest_id,
    valid_ip_id,
)
from trio_quorum.protocol.consts import Err, KeeperError, Perm
from trio_quorum.protocol.data import ACL, Id


def _sha(s: str) -> str:
    return base64.b64encode(hashlib.sha1(s.encode()).digest()).decode()


def test_digest_auth_adds_digest_id() -> None:
    reg = AuthRegistry()
    ids = reg.authenticate("digest", b"bob:secret", "127.0.0.1")
    assert ids == [Id("digest", f"bob:{_sha('bob:secret')}")]
    # The digest id grants what an ACL on that id allows, and nothing else.
    acl = [ACL(Perm.READ, ids[0])]
    assert check(acl, Perm.READ, ids)
    assert not check(acl, Perm.WRITE, ids)
    assert not check(acl, Perm.READ, reg.authenticate("digest", b"bob:wrong"))


def test_super_digest_grants_super() -> None:
    super_digest = digest_id("super:adminpw")
    reg = AuthRegistry(super_digest=super_digest)
    ids = reg.authenticate("digest", b"super:adminpw")
    assert ids == [SUPER_ID, Id("digest", super_digest)]
    assert check([ACL(Perm.READ, Id("digest", "x:y"))], Perm.ADMIN, ids)
    # A wrong super password authenticates as an ordinary digest user, not super.
    assert SUPER_ID not in reg.authenticate("digest", b"super:nope")
    # Without superDigest configured nobody becomes super.
    assert SUPER_ID not in AuthRegistry().authenticate("digest", b"super:adminpw")


@pytest.mark.parametrize("scheme", ["world", "super", "auth", "sasl", "nosuch", ""])
def test_unknown_schemes_fail(scheme: str) -> None:
    with pytest.raises(KeeperError) as ei:
        AuthRegistry().authenticate(scheme, b"x:y", "10.0.0.1")
    assert ei.value.code == Err.AUTHFAILED


def test_bad_digest_credentials_fail() -> None:
    with pytest.raises(KeeperError) as ei:
        AuthRegistry().authenticate("digest", b"\xff\xfe:pw")
    assert ei.value.code == Err.AUTHFAILED


def test_ip_ids() -> None:
    reg = AuthRegistry()
    assert reg.initial_ids("10.1.2.3") == [Id("ip", "10.1.2.3")]
    assert reg.initial_ids(None) == []
    assert reg.authenticate("ip", b"", "10.1.2.3") == [Id("ip", "10.1.2.3")]
    with pytest.raises(KeeperError):
        reg.authenticate("ip", b"", None)
    assert check([ACL(Perm.ALL, Id("ip", "10.1.0.0/16"))], Perm.READ, reg.initial_ids("10.1.2.3"))
    assert not check(
        [ACL(Perm.ALL, Id("ip", "10.2.0.0/16"))], Perm.READ, reg.initial_ids("10.1.2.3")
    )


def test_add_ids_dedupes() -> None:
    ids = [Id("ip", "1.2.3.4")]
    AuthRegistry.add_ids(ids, [Id("digest", "a:b"), Id("ip", "1.2.3.4"), Id("digest", "a:b")])
    assert ids == [Id("ip", "1.2.3.4"), Id("digest", "a:b")]


def test_java_split_semantics() -> None:
    assert java_split("a:b", ":") == ["a", "b"]
    assert java_split("a:", ":") == ["a"]
    assert java_split(":b", ":") == ["", "b"]
    assert java_split(":", ":") == []
    assert java_split("", ":") == [""]
    assert java_split("a::", ":") == ["a"]


@pytest.mark.parametrize(
    ("ident", "ok"),
    [("u:hash", True), (":hash", True), ("u:", False), ("u", False), ("a:b:c", False), ("", False)],
)
def test_digest_id_validity(ident: str, ok: bool) -> None:
    assert valid_digest_id(ident) is ok
    assert AuthRegistry().is_valid(Id("digest", ident)) is ok


@pytest.mark.parametrize(
    ("ident", "ok"),
    [
        ("1.2.3.4", True),
        ("1.2.3.4/24", True),
        ("1.2.3.4/32", True),
        ("1.2.3.4/33", False),
        ("1.2.3.4/-1", False),
        ("1.2.3.4/x", False),
        ("1.2.3.4/", False),
        ("1.2.3", False),
        ("300.1.1.1", False),
        ("::1", True),
        ("fe80::/64", True),
        ("fe80::/129", False),
        ("host", False),
    ],
)
def test_ip_id_validity(ident: str, ok: bool) -> None:
    assert valid_ip_id(ident) is ok


def test_registry_validity_and_authenticated_flags() -> None:
    reg = AuthRegistry()
    assert not reg.is_valid(Id("world", "anyone"))  # world:anyone is special-cased by fixupACL
    assert not reg.is_valid(Id("super", ""))
    assert not reg.is_valid(Id("x509", "CN=a"))
    assert reg.is_authenticated("digest")
    assert not reg.is_authenticated("ip")
    assert not reg.is_authenticated("super")


def test_extra_provider_plugs_in() -> None:
    class KeyProvider(AuthProvider):
        scheme = "key"
        authenticated = True

        def handle_authentication(self, auth: bytes, client_addr: str | None) -> list[Id]:
            if auth != b"open sesame":
                raise KeeperError(Err.AUTHFAILED)
            return [Id("key", "opener")]

        def is_valid(self, ident: str) -> bool:
            return ident.isalpha()

    reg = AuthRegistry(extra=[KeyProvider()])
    assert reg.authenticate("key", b"open sesame") == [Id("key", "opener")]
    with pytest.raises(KeeperError):
        reg.authenticate("key", b"guess")
    assert reg.is_valid(Id("key", "abc")) and not reg.is_valid(Id("key", "a1"))


def test_who_am_i() -> None:
    reg = AuthRegistry(super_digest=digest_id("super:pw"))
    ids = reg.initial_ids("127.0.0.1") + reg.authenticate("digest", b"super:pw")
    # ZooKeeper lists a connection's ids in its ConcurrentHashMap's order; this
    # order was printed by Java 17 for the same three ids.
    assert reg.who_am_i(ids) == [
        ClientInfo("digest", "super"),
        ClientInfo("super", ""),
        ClientInfo("ip", "127.0.0.1"),
    ]


def test_java_set_order_matches_java() -> None:
    # Orders printed by Java 17 iterating Collections.newSetFromMap(new
    # ConcurrentHashMap<>()) filled with jute Ids in the listed insertion order.
    cases = [
        (
            [("ip", "127.0.0.1"), ("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=")],
            [("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="), ("ip", "127.0.0.1")],
        ),
        (
            [("ip", "10.1.2.3"), ("digest", "bob:xyz"), ("digest", "carol:abc"), ("world", "anyone")],
            [("digest", "bob:xyz"), ("ip", "10.1.2.3"), ("world", "anyone"), ("digest", "carol:abc")],
        ),
    ]
    for given, java in cases:
        assert java_set_order([Id(*i) for i in given]) == [Id(*i) for i in java]
