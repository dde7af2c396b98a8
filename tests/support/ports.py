"""Free loopback ports for the servers the tests start."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago (all held open while picking,
    so no two are the same)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class PortPicker:
    """Hands out free loopback ports, never the same one twice: a port picked for a server that
    has not bound it yet is not handed to the next server."""

    def __init__(self) -> None:
        self._given: set[int] = set()

    def __call__(self) -> int:
        [port] = self.many(1)
        return port

    def many(self, count: int) -> list[int]:
        """`count` distinct free ports, none handed out before."""
        ports: list[int] = []
        while len(ports) < count:
            ports += [p for p in free_ports(count - len(ports)) if p not in self._given]
            self._given.update(ports)
        return ports
