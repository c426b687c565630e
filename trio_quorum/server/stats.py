"""Server and connection statistics (ZooKeeper's ``ServerStats`` / ``ServerCnxn`` stats).

Counters only; nothing here reads a clock (callers pass times in ms).  The
pipeline's final stage updates them once per reply, so each update is a few
integer additions.

Invariants: latencies are whole milliseconds (ZooKeeper's resolution); a reset
(``srst`` / ``crst``) zeroes counters but keeps gauges such as ``outstanding``.
"""

from __future__ import annotations

__sans_io__ = True

__all__ = ["ServerStats", "ConnStats", "LAST_OP_NAMES"]

#: ``FinalRequestProcessor``'s four-letter ``lastOp`` names shown by ``cons``.
LAST_OP_NAMES: dict[int, str] = {
    11: "PING",
    -10: "SESS",
    14: "MULT",
    22: "MLTR",
    1: "CREA",
    15: "CREA",
    19: "CREA",
    21: "CREA",
    2: "DELE",
    20: "DELE",
    5: "SETD",
    16: "RECO",
    7: "SETA",
    -11: "CLOS",
    9: "SYNC",
    13: "CHEC",
    3: "EXIS",
    4: "GETD",
    101: "SETW",
    105: "STW2",
    6: "GETA",
    8: "GETC",
    12: "GETC",
    17: "CHKW",
    18: "REMW",
    103: "GETE",
    104: "GETACN",
    106: "ADDW",
    107: "HOMI",
    100: "AUTH",
}


class ServerStats:
    """Whole-server counters for ``srvr`` / ``stat`` / ``mntr``."""

    __slots__ = (
        "packets_received",
        "packets_sent",
        "min_latency",
        "max_latency",
        "total_latency",
        "count",
        "outstanding",
        "auth_failed",
        "fsync_count",
        "fsync_total_ms",
        "last_client_response_size",
        "min_client_response_size",
        "max_client_response_size",
    )

    def __init__(self) -> None:
        self.outstanding = 0
        self.reset()

    def reset(self) -> None:
        self.packets_received = 0
        self.packets_sent = 0
        self.min_latency = 0
        self.max_latency = 0
        self.total_latency = 0
        self.count = 0
        self.auth_failed = 0
        self.fsync_count = 0
        self.fsync_total_ms = 0.0
        self.last_client_response_size = -1
        self.min_client_response_size = -1
        self.max_client_response_size = -1

    def update_latency(self, latency_ms: int) -> None:
        self.update_latency_n(latency_ms, 1)

    def update_latency_n(self, latency_ms: int, n: int) -> None:
        """``n`` responses that all took ``latency_ms`` (one socket read's requests)."""
        if self.count == 0 or latency_ms < self.min_latency:
            self.min_latency = latency_ms
        if latency_ms > self.max_latency:
            self.max_latency = latency_ms
        self.total_latency += latency_ms * n
        self.count += n

    @property
    def avg_latency(self) -> float:
        return self.total_latency / self.count if self.count else 0.0


class ConnStats:
    """Per-connection counters for ``cons``."""

    __slots__ = (
        "packets_received",
        "packets_sent",
        "min_latency",
        "max_latency",
        "total_latency",
        "count",
        "last_op",
        "last_cxid",
        "last_zxid",
        "last_response_time",
        "last_latency",
    )

    def __init__(self) -> None:
        self.packets_received = 0
        self.packets_sent = 0
        self.reset()

    def reset(self) -> None:
        self.packets_received = 0
        self.packets_sent = 0
        self.min_latency = 0
        self.max_latency = 0
        self.total_latency = 0
        self.count = 0
        self.last_op = "NA"
        self.last_cxid = -1
        self.last_zxid = -1
        self.last_response_time = 0
        self.last_latency = 0

    def update_for_responses(self, cxid: int, zxid: int, op: int, latency_ms: int, end_ms: int, n: int) -> None:
        """:meth:`update_for_response` for ``n`` responses with the same latency;
        ``cxid``/``op`` are the last one's (``cxid`` < 0: none moved lcxid)."""
        if cxid >= 0:
            self.last_cxid = cxid
        self.last_zxid = zxid
        self.last_op = LAST_OP_NAMES.get(op, "NA")
        self.last_response_time = end_ms
        self.last_latency = latency_ms
        if self.count == 0 or latency_ms < self.min_latency:
            self.min_latency = latency_ms
        if latency_ms > self.max_latency:
            self.max_latency = latency_ms
        self.total_latency += latency_ms * n
        self.count += n

    def update_for_response(self, cxid: int, zxid: int, op: int, start_ms: int, end_ms: int) -> None:
        """``ServerCnxn.updateStatsForResponse``: pings and notifications do not move lcxid."""
        self.update_for_responses(cxid, zxid, op, end_ms - start_ms, end_ms, 1)

    @property
    def avg_latency(self) -> int:
        return self.total_latency // self.count if self.count else 0
