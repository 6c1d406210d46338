"""The PUB side: an XPUB socket that never blocks acquisition and counts what it drops.

A plain PUB socket drops silently at its high-water mark. We use XPUB with ``XPUB_NODROP`` and
non-blocking sends instead, so a full queue (a slow or stuck subscriber) raises ``EAGAIN`` and the
message is **dropped and counted** per topic; the sequence number still advances, so subscribers
see the gap. Subscription frames arriving on the XPUB socket are read to track subscriber count.
One lock serialises every use of the socket (the inference and control threads both publish).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import zmq
from numpy.typing import NDArray

from core.config import ConfigError
from edge.device import wire
from edge.device.opsconfig import PublisherConfig
from edge.device.spool import Spool

if TYPE_CHECKING:
    from edge.device.security import ServerSecurity

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, context: zmq.Context[Any], config: PublisherConfig, daemon_id: str,
                 *, spool: Spool | None = None, security: ServerSecurity | None = None) -> None:
        self.config = config
        #: every message goes to the spool before it is sent (replay); sequence numbers continue from it
        self.spool = spool
        self.daemon_id = daemon_id
        self._sock: zmq.Socket[Any] = context.socket(zmq.XPUB)
        if security is not None:  # CURVE server: only clients the ZAP handler admits connect
            security.setup_socket(self._sock)
        self._sock.setsockopt(zmq.SNDHWM, config.send_hwm)
        self._sock.setsockopt(zmq.XPUB_NODROP, 1)
        self._sock.setsockopt(zmq.LINGER, config.linger_ms)
        try:
            self._sock.bind(config.endpoint)
        except zmq.ZMQError as exc:
            self._sock.close(linger=0)  # an open socket would block the context's term() forever
            raise ConfigError(f"[publisher] endpoint {config.endpoint}: cannot bind ({exc.strerror}); "
                              "is another daemon running? choose another endpoint") from exc
        self.endpoint: str = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._lock = threading.Lock()
        self._seq: Counter[str] = Counter(spool.next_seqs() if spool else {})
        #: names the sequence space: the spool's creation time (Unix ms), else this publisher's
        self.epoch = spool.epoch if spool else int(time.time() * 1000)
        self.sent: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.subscriptions = 0
        self._closed = False

    def publish(self, topic: str, header: dict[str, Any], payloads: dict[str, NDArray[Any]] | None = None) -> bool:
        """Send one message without blocking; False (and counted) when it was dropped."""
        return self.publish_many(topic, [(header, payloads)])[0]

    def publish_many(self, topic: str, messages: Sequence[tuple[dict[str, Any], dict[str, NDArray[Any]] | None]]
                     ) -> list[bool]:
        """Send ``messages`` ``(header, payloads)`` of ``topic`` in order, without blocking; per message False (and
        counted) when it was dropped. With a spool all of them are stored in one transaction before the first
        is sent (store before send, one commit per batch instead of one per message)."""
        with self._lock:
            if self._closed:
                return [False] * len(messages)
            self._poll_subscriptions()
            encoded = []
            for header, payloads in messages:
                seq = self._seq[topic]
                self._seq[topic] += 1
                hdr = {**header, "daemon_id": self.daemon_id, "epoch": self.epoch, "seq": seq, "t_sent": time.time()}
                encoded.append((seq, wire.encode(topic, hdr, payloads)))
            if self.spool is not None:  # before sending: a subscriber that sees the gap can replay at once
                self.spool.append_many(topic, [(seq, bytes(frames[1]), frames[2:]) for seq, frames in encoded],
                                       topic in self.spool.config.topics)
            return [self._send(topic, frames) for _, frames in encoded]

    def _send(self, topic: str, frames: list[Any]) -> bool:
        try:
            self._sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.dropped[topic] += 1
            if self.dropped[topic] in (1, 10, 100) or self.dropped[topic] % 1000 == 0:
                log.warning("publisher: %d %s message(s) dropped (subscriber slow or stuck at HWM %d)",
                            self.dropped[topic], topic, self.config.send_hwm)
            return False
        self.sent[topic] += 1
        return True

    def _poll_subscriptions(self) -> None:
        while self._sock.poll(0, zmq.POLLIN):
            msg = self._sock.recv(zmq.NOBLOCK)
            if msg[:1] == b"\x01":
                self.subscriptions += 1
            elif msg[:1] == b"\x00":
                self.subscriptions = max(0, self.subscriptions - 1)

    def wait_for_subscribers(self, n: int, timeout: float) -> bool:
        """Block until ``n`` subscriptions arrived (a subscription handshake; used by tests and tools)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self._closed:
                    return False
                self._poll_subscriptions()
                if self.subscriptions >= n:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._sock.poll(int(min(left, 0.05) * 1000), zmq.POLLIN)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            if not self._closed:
                self._poll_subscriptions()  # so `status` shows a new subscriber before the next publish
            return {"sent": dict(self.sent), "dropped": dict(self.dropped), "subscriptions": self.subscriptions,
                    "endpoint": self.endpoint, "epoch": self.epoch, "next_seq": dict(self._seq)}

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._sock.close(linger=self.config.linger_ms)


def rgb8_hwc(chw: NDArray[np.float32]) -> NDArray[np.uint8]:
    """A ``(3, P, P)`` float image in [0, 1] as ``(P, P, 3)`` uint8 for the wire; a batch ``(B, 3, P, P)``
    as ``(B, P, P, 3)``."""
    x = np.clip(np.rint(chw * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.moveaxis(x, -3, -1))
