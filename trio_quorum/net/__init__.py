"""Drivers of the ensemble's peer links: networks (WebSocket, in-memory) and PeerLinks.

See ``docs/links.md``.  The frames' format is the sans-IO ``trio_quorum.quorum.wire``.
"""

from .backoff import Backoff
from .links import (
    Batch,
    FifoOutbox,
    LatestOutbox,
    LinkDown,
    LinksConfig,
    LinksStatistics,
    LinkUp,
    PeerLinks,
    PeerStatistics,
    open_peer_links,
)
from .memory import ConnectAttempt, LinkFaults, LinkInfo, MemoryEndpoint, MemoryNetwork
from .network import Link, LinkClosed, LinkError, Network
from .websocket import WebSocketNetwork

__all__ = [
    "Backoff",
    "Batch",
    "ConnectAttempt",
    "FifoOutbox",
    "LatestOutbox",
    "Link",
    "LinkClosed",
    "LinkDown",
    "LinkError",
    "LinkFaults",
    "LinkInfo",
    "LinkUp",
    "LinksConfig",
    "LinksStatistics",
    "MemoryEndpoint",
    "MemoryNetwork",
    "Network",
    "PeerLinks",
    "PeerStatistics",
    "WebSocketNetwork",
    "open_peer_links",
]
