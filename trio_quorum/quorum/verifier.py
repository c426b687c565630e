"""Ensemble membership and the majority rule, ZooKeeper's ``QuorumMaj`` (sans-IO).

A :class:`QuorumVerifier` names the *participants* (voting members, by sid) and
the *observers* (members that learn the leader and replicate, but never vote).

Invariants:

* ``participants`` is non-empty and disjoint from ``observers``;
* a set of sids contains a quorum iff strictly more than half of the
  participants are in it (``len(participants) // 2`` is ZooKeeper's ``half``);
  sids that are not participants (observers, strangers) are ignored, so a
  caller may pass any set of acknowledgers without filtering it first;
* any two quorums intersect in at least one participant: this is what makes
  "at most one leader per election round backed by a quorum" hold.

Weighted and hierarchical quorums (``QuorumHierarchical``) are not modelled:
every participant weighs 1 and every other sid 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__sans_io__ = True

__all__ = ["QuorumVerifier"]


@dataclass(frozen=True, slots=True)
class QuorumVerifier:
    """Who votes, who observes, and what a majority is.

    Args:
        participants: sids of the voting members.
        observers: sids of the observers (never counted toward a quorum).
        version: the configuration version (ZooKeeper's dynamic config
            version); carried in notifications, not interpreted here.
    """

    participants: frozenset[int]
    observers: frozenset[int] = frozenset()
    version: int = 0

    def __post_init__(self) -> None:
        if not self.participants:
            raise ValueError("an ensemble needs at least one participant")
        both = self.participants & self.observers
        if both:
            raise ValueError(f"sids both participant and observer: {sorted(both)}")

    @classmethod
    def of(cls, participants: Iterable[int], observers: Iterable[int] = (), version: int = 0) -> QuorumVerifier:
        """Build from any iterables of sids."""
        return cls(frozenset(participants), frozenset(observers), version)

    @property
    def half(self) -> int:
        """ZooKeeper's ``half``: a quorum is any set of more than this many participants."""
        return len(self.participants) // 2

    @property
    def members(self) -> frozenset[int]:
        """Every sid of the ensemble, participants and observers."""
        return self.participants | self.observers

    def is_voter(self, sid: int) -> bool:
        """True for a participant (ZooKeeper's ``validVoter``)."""
        return sid in self.participants

    def is_observer(self, sid: int) -> bool:
        return sid in self.observers

    def weight(self, sid: int) -> int:
        """1 for a participant, 0 otherwise (``QuorumMaj.getWeight``)."""
        return 1 if sid in self.participants else 0

    def contains_quorum(self, sids: Iterable[int]) -> bool:
        """True iff more than half of the participants are among ``sids``."""
        participants = self.participants
        return len({s for s in sids if s in participants}) > len(participants) // 2
