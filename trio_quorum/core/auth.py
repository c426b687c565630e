"""Authentication providers: digest, ip, super; ACL id validation; whoAmI (sans-IO).

ZooKeeper's ``ProviderRegistry`` and its built-in ``AuthenticationProvider``s,
reduced to what the server needs:

* ``digest``: an AuthPacket ``("digest", b"user:password")`` always succeeds and
  adds ``Id("digest", "user:base64(sha1(user:password))")``.  When that id equals
  the configured superDigest (``super:<base64 sha1>``) the connection also gets
  ``Id("super", "")``, which passes every ACL check.
* ``ip``: every connection starts with ``Id("ip", <client address>)``; an
  AuthPacket with scheme ``ip`` adds it again.  The ip provider is *not*
  "authenticated" (``isAuthenticated() == false``), so the ``auth`` ACL scheme
  never expands to ip ids.
* ``world`` / ``super`` / unknown schemes have no provider: an AuthPacket
  naming them fails with AUTHFAILED (the connection is then closed by its driver).

ACL ids on create/setACL are validated per scheme (``isValid``): ``digest``
ids must split on ``:`` into exactly two parts (Java ``split`` semantics, so a
trailing ``:`` is refused); ``ip`` ids are ``addr[/bits]`` with bits in range.

Invariants: providers keep no per-connection state; the connection's id list
is owned by its driver and passed in.  Nothing here raises anything but
:class:`~trio_quorum.protocol.consts.KeeperError` on bad client input.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..protocol.consts import Err, KeeperError
from ..protocol.data import Id
from .acl import SUPER_ID, digest_id

__sans_io__ = True

__all__ = [
    "ClientInfo",
    "AuthProvider",
    "DigestProvider",
    "IpProvider",
    "AuthRegistry",
    "java_split",
    "valid_digest_id",
    "valid_ip_id",
]


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """One ``ClientInfo{authScheme, user}`` of a whoAmI reply."""

    auth_scheme: str
    user: str


def java_split(s: str, sep: str) -> list[str]:
    """``String.split(sep)`` for a literal one-char ``sep``: trailing empty strings dropped."""
    parts = s.split(sep)
    while parts and parts[-1] == "":
        parts.pop()
    return parts if parts else ([""] if s == "" else [])


def valid_digest_id(ident: str) -> bool:
    """``DigestAuthenticationProvider.isValid``."""
    return len(java_split(ident, ":")) == 2


def valid_ip_id(ident: str) -> bool:
    """``IPAuthenticationProvider.isValid``: ``addr`` or ``addr/bits``."""
    addr, slash, bits = ident.partition("/")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    if not slash:
        return True
    if not bits or not (bits.isascii() and bits.lstrip("+-").isdigit()):
        return False
    n = int(bits)
    return 0 <= n <= ip.max_prefixlen


class AuthProvider:
    """Base provider.  Subclasses set ``scheme`` and ``authenticated`` and
    override :meth:`handle_authentication` / :meth:`is_valid` / :meth:`user_name`."""

    scheme = ""
    #: ``isAuthenticated()``: whether its ids stand for a proven identity
    #: (only those are used to expand the ``auth`` ACL scheme).
    authenticated = False

    def handle_authentication(self, auth: bytes, client_addr: str | None) -> list[Id]:
        """Ids to add to the connection, or raise ``KeeperError(AUTHFAILED)``."""
        raise KeeperError(Err.AUTHFAILED)

    def is_valid(self, ident: str) -> bool:
        return False

    def user_name(self, ident: str) -> str:
        return ident


class DigestProvider(AuthProvider):
    """``digest`` with an optional superDigest (``"super:<base64 sha1>"``)."""

    scheme = "digest"
    authenticated = True

    def __init__(self, super_digest: str | None = None) -> None:
        self.super_digest = super_digest or None

    def handle_authentication(self, auth: bytes, client_addr: str | None) -> list[Id]:
        try:
            text = auth.decode("utf-8")
        except UnicodeDecodeError:
            raise KeeperError(Err.AUTHFAILED) from None
        digest = digest_id(text)
        ids = [Id("digest", digest)]
        if self.super_digest is not None and digest == self.super_digest:
            ids.insert(0, SUPER_ID)
        return ids

    def is_valid(self, ident: str) -> bool:
        return valid_digest_id(ident)

    def user_name(self, ident: str) -> str:
        return java_split(ident, ":")[0] if ident else ident


class IpProvider(AuthProvider):
    scheme = "ip"
    authenticated = False

    def handle_authentication(self, auth: bytes, client_addr: str | None) -> list[Id]:
        if not client_addr:
            raise KeeperError(Err.AUTHFAILED)
        return [Id("ip", client_addr)]

    def is_valid(self, ident: str) -> bool:
        return valid_ip_id(ident)


class AuthRegistry:
    """The server's providers by scheme (``ProviderRegistry``).

    Args:
        super_digest: ``zookeeper.DigestAuthenticationProvider.superDigest``.
        extra: more providers (e.g. a test ``key`` scheme, sasl, x509).
    """

    __slots__ = ("providers",)

    def __init__(self, super_digest: str | None = None, extra: Iterable[AuthProvider] = ()) -> None:
        self.providers: dict[str, AuthProvider] = {
            "digest": DigestProvider(super_digest),
            "ip": IpProvider(),
        }
        for p in extra:
            self.providers[p.scheme] = p

    @staticmethod
    def initial_ids(client_addr: str | None) -> list[Id]:
        """Ids every new connection starts with: its ip address."""
        return [Id("ip", client_addr)] if client_addr else []

    def authenticate(self, scheme: str, auth: bytes, client_addr: str | None = None) -> list[Id]:
        """Handle an AuthPacket: the ids to add, or ``KeeperError(AUTHFAILED)``."""
        p = self.providers.get(scheme)
        if p is None:
            raise KeeperError(Err.AUTHFAILED)
        return p.handle_authentication(auth, client_addr)

    @staticmethod
    def add_ids(current: list[Id], new: Iterable[Id]) -> None:
        """Append ids a connection does not hold yet (``ServerCnxn.addAuthInfo``)."""
        for i in new:
            if i not in current:
                current.append(i)

    def is_valid(self, ident: Id) -> bool:
        """Whether an ACL entry's id is well formed for its scheme."""
        p = self.providers.get(ident.scheme)
        return p is not None and p.is_valid(ident.id)

    def is_authenticated(self, scheme: str) -> bool:
        """Whether ids of ``scheme`` count for the ``auth`` ACL scheme."""
        p = self.providers.get(scheme)
        return p is not None and p.authenticated

    def who_am_i(self, auth_ids: Sequence[Id]) -> list[ClientInfo]:
        """The whoAmI reply for a connection holding ``auth_ids``."""
        out = []
        for i in java_set_order(auth_ids):
            p = self.providers.get(i.scheme)
            out.append(ClientInfo(i.scheme, p.user_name(i.id) if p is not None else i.id))
        return out


def _java_string_hash(s: str) -> int:
    h = 0
    for unit in s.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h


def java_set_order(ids: Sequence[Id]) -> list[Id]:
    """``ids`` in the order ZooKeeper iterates a connection's auth info.

    ZooKeeper keeps a connection's ids in a set backed by a ConcurrentHashMap
    (16 buckets until it holds 12 entries), so whoAmI lists them by hash
    bucket, not by when they were added; clients print that order, and we
    match it.  Within a bucket, insertion order is kept (a stable sort).
    """

    def bucket(i: Id) -> int:
        # jute's Id.hashCode, then ConcurrentHashMap.spread and the table index.
        h = (37 * (37 * 17 + _java_string_hash(i.scheme)) + _java_string_hash(i.id)) & 0xFFFFFFFF
        h = (h ^ (h >> 16)) & 0x7FFFFFFF
        return h & 15

    return sorted(ids, key=bucket) if len(ids) < 12 else list(ids)
