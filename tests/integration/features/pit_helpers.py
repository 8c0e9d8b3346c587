"""Helpers of the feature-store tests: a fixed clock, an event builder, a proxy that cuts a batch part-way."""

from __future__ import annotations

import socket
import threading
import time

from recsys.events import Event

# A day boundary (2023-11-15T00:00:00Z) plus 12:30:10: the 5-minute bucket of NOW starts at 12:30:00.
MIDNIGHT = 19676 * 86400
NOW = MIDNIGHT + 12 * 3600 + 30 * 60 + 10
DAY = 86400


def make_event(event_id: str, event_type: str, age_s: float, item_id: str | None = "A", user_id: str = "u1",
               value: float | None = None, **properties: str) -> Event:
    """An event `age_s` seconds before NOW."""
    return Event(event_id, user_id, event_type, NOW - age_s, item_id=item_id, event_value=value,
                 properties=dict(properties))


class CuttingProxy:
    """A TCP proxy to a Redis server that cuts the connection part-way through the first EVALSHA pipeline.

    Everything is relayed until the client sends its first EVALSHA; from there only `budget` more bytes reach the
    server, then both sides are closed. The server runs the commands that arrived whole, the client gets no
    answer: a batch that failed part-way, as a network cut or a node failure does it.
    """

    def __init__(self, port: int, budget: int) -> None:
        self.target = port
        self.budget = budget
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        client, _ = self.listener.accept()
        self.listener.close()
        server = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=self._relay_answers, args=(server, client), daemon=True).start()
        remaining = None
        while remaining is None or remaining > 0:
            chunk = client.recv(65536)
            if not chunk:
                break
            if remaining is None and b"EVALSHA" in chunk:
                start = chunk.index(b"EVALSHA")
                server.sendall(chunk[:start])
                chunk, remaining = chunk[start:], self.budget
            if remaining is not None:
                chunk = chunk[:remaining]
                remaining -= len(chunk)
            server.sendall(chunk)
        time.sleep(0.2)  # let the server run what it got before it sees the connection close
        for sock in (client, server):
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    @staticmethod
    def _relay_answers(server: socket.socket, client: socket.socket) -> None:
        try:
            while chunk := server.recv(65536):
                client.sendall(chunk)
        except OSError:
            pass  # the connection was cut
