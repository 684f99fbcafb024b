"""The embedded Temporal server starts even when a port is taken between its choice and bind."""

from __future__ import annotations

import socket
from pathlib import Path

from devstack.temporal import EmbeddedTemporal


def test_a_port_taken_after_it_was_chosen_is_chosen_again(tmp_path: Path) -> None:
    server = EmbeddedTemporal(tmp_path / "temporal", headless=True)
    chosen = server.port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", chosen))
        squatter.listen()
        server.start()
        try:
            assert server.port != chosen
        finally:
            server.stop()
