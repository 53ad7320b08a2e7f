#!/usr/bin/env python3
"""A hostile client for the flood test: one ZeroMQ message that never ends.

Usage: endless-multipart.py HOST PORT SECONDS

Speaks ZMTP 3.0 over a plain TCP socket (a libzmq client cannot do this: it sends a multipart
message only once it is complete): the greeting, READY as a DEALER, then 64 KiB frames flagged
MORE, for ever. libzmq on the receiving side buffers an incomplete message whole and counts only
whole messages against its high-water mark, so only the coordinator's inbound guard bounds what
this costs it. After 256 MiB on one connection, or when the coordinator closes it, this starts
again on a new connection, until SECONDS have passed. Prints the connections made, the bytes sent
and how many connections the other side closed.
"""
import socket
import struct
import sys
import time

GREETING = b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


def ready() -> bytes:
    body = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", 6) + b"DEALER"
    return bytes([0x04, len(body)]) + body  # a short command frame


def main() -> int:
    host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    deadline = time.monotonic() + seconds
    frame = bytes([0x03]) + struct.pack(">Q", 64 << 10) + b"\x5a" * (64 << 10)  # long frame, MORE
    connections = sent = cut = 0
    while time.monotonic() < deadline:
        try:
            s = socket.create_connection((host, port), timeout=5)
        except OSError:
            time.sleep(0.05)
            continue
        connections += 1
        s.settimeout(1)
        try:
            s.sendall(GREETING + ready())
            on_this = 0
            while on_this < (256 << 20) and time.monotonic() < deadline:
                s.sendall(frame)
                on_this += len(frame)
                sent += len(frame)
        except (socket.timeout, TimeoutError):
            pass  # the other side stopped reading: start again
        except OSError:
            cut += 1  # reset or closed by the other side
        finally:
            s.close()
    print(f"connections {connections} bytes {sent} cut {cut}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
