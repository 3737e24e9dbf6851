"""What one shared write costs the fanout: one frame written to each of N loopback sockets,
through uvloop's transport (`transport.write`, as region/live.py `send_prepared` does) or the
socket itself (`socket.send`, no transport in the way), alternately.

    .venv/bin/python bench/sendpath.py            # 1,000 sockets, 200 rounds, 2 of each path

Each round writes one 260-byte WebSocket frame to every socket (a stream's batch to its
viewers), then lets the readers drain; the figure is the CPU of the writing loop alone
(`time.thread_time` around it) per write. The readers are in the same process (they read in
between the rounds, outside the measured loop), the sockets are set as a gateway sets them
(64 KiB send buffer, no Nagle).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import time

import uvloop

FRAME = b"\x81\x7e\x01\x04" + b"x" * 260   # a 260-byte text frame, unmasked, as a server's


class _Sink(asyncio.Protocol):
    def data_received(self, data: bytes) -> None:
        pass


async def _measure(path: str, n: int, rounds: int) -> float:
    """us of CPU per write of the writing loop, over ``rounds`` rounds of ``n`` writes."""
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0), backlog=n)
    port = listener.getsockname()[1]
    writers: list[socket.socket] = []
    closers: list[asyncio.BaseTransport] = []
    for _ in range(n):
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = listener.accept()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server.setblocking(False)
        client.setblocking(False)
        writers.append(server)
        reader, _ = await loop.connect_accepted_socket(_Sink, client)
        closers.append(reader)
    transports: list[asyncio.WriteTransport] = []
    if path == "transport":
        for server in writers:
            t, _ = await loop.connect_accepted_socket(_Sink, server)
            transports.append(t)
            closers.append(t)
    cpu = 0.0
    for _ in range(rounds):
        began = time.thread_time()
        if transports:
            for t in transports:   # send_prepared's checks, then the write
                if not t.is_closing() and t.get_write_buffer_size() < 64 * 1024:
                    t.write(FRAME)
        else:
            for s in writers:
                s.send(FRAME)
        cpu += time.thread_time() - began
        for _ in range(3):
            await asyncio.sleep(0)   # the readers drain (not measured)
    for c in closers:
        c.close()
    if not transports:
        for s in writers:
            s.close()
    listener.close()
    return cpu / (n * rounds) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--runs", type=int, default=2, help="alternating runs of each path")
    args = parser.parse_args()
    got: dict[str, list[float]] = {"transport": [], "socket": []}
    for _ in range(args.runs):
        for path in got:
            us = uvloop.run(_measure(path, args.sockets, args.rounds))
            got[path].append(us)
            print(f"{path:<9} {us:5.2f} us CPU per write  (load {os.getloadavg()[0]:.1f})",
                  flush=True)
    for path, values in got.items():
        print(f"median {path:<9} {statistics.median(values):5.2f} us per write")


if __name__ == "__main__":
    main()
