#!/usr/bin/env python3
"""A hostile ZeroMQ client for the flood test (Tests/IntegrationTests/FloodTests.swift).

Usage: flood-client.py KIND HOST PORT SECONDS [MESSAGES]

Speaks ZMTP 3.0 (NULL mechanism, as a DEALER) over plain TCP sockets, so that nothing the
coordinator does to its connections can crash it (libzmq may abort a client whose connection is
cut in the middle of a message), and so that it can send what a libzmq client cannot: a multipart
message that never ends. Floods until SECONDS have passed, on ever new connections:

  garbage    20 messages of 1 to 3 random frames per connection
  oversized  messages over the coordinator's limits: 12 frames, or 3 frames of 1 MiB
  replay     the messages of the file MESSAGES (well-formed ones only a coordinator sends, HELLOs
             under random names, ...): u32 frame count, then per frame u32 length and its bytes,
             little-endian
  endless    one message of 64 KiB frames flagged MORE, up to 256 MiB per connection
  sequence   the messages of the file MESSAGES once each, dealt round-robin over 50 connections
             held open (one the other side closes is opened again for the rest), then keeps them
             open until SECONDS have passed or SIGTERM comes: a peer's messages still unread
             when its connection closes are dropped by libzmq

Prints "connections N messages M bytes B cut C" at the end (C: connections the other side closed).
"""
import os
import random
import signal
import socket
import struct
import sys
import time

GREETING = b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31
READY_BODY = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", 6) + b"DEALER"
READY = bytes([0x04, len(READY_BODY)]) + READY_BODY  # a short command frame


def frame(data: bytes, more: bool) -> bytes:
    flags = 0x01 if more else 0x00
    if len(data) <= 255:
        return bytes([flags, len(data)]) + data
    return bytes([flags | 0x02]) + struct.pack(">Q", len(data)) + data


def message(frames) -> bytes:
    return b"".join(frame(f, i < len(frames) - 1) for i, f in enumerate(frames))


def read_messages(path):
    messages = []
    with open(path, "rb") as f:
        data = f.read()
    at = 0
    while at < len(data):
        (count,) = struct.unpack_from("<I", data, at)
        at += 4
        frames = []
        for _ in range(count):
            (length,) = struct.unpack_from("<I", data, at)
            at += 4
            frames.append(data[at:at + length])
            at += length
        messages.append(frames)
    return messages


def sequence(host, port, seconds, messages) -> int:
    deadline = time.monotonic() + seconds
    slots = [None] * 50
    connections = sent = cut = 0

    def connect():
        nonlocal connections
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(GREETING + READY)
        s.setblocking(False)
        connections += 1
        return s

    def drain(s):
        try:
            while s.recv(65536):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    try:
        for i, frames in enumerate(messages):
            if time.monotonic() >= deadline:
                break
            slot = i % len(slots)
            data = message(frames)
            for _ in range(3):
                try:
                    if slots[slot] is None:
                        slots[slot] = connect()
                    drain(slots[slot])
                    slots[slot].setblocking(True)
                    slots[slot].sendall(data)
                    slots[slot].setblocking(False)
                    sent += 1
                    break
                except OSError:
                    cut += 1
                    if slots[slot] is not None:
                        slots[slot].close()
                    slots[slot] = None
        while time.monotonic() < deadline:
            for s in slots:
                if s is not None:
                    try:
                        drain(s)
                    except OSError:
                        pass
            time.sleep(0.05)
    finally:
        print(f"connections {connections} messages {sent} bytes 0 cut {cut}", flush=True)
    return 0


def main() -> int:
    kind, host, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if kind == "sequence":
        return sequence(host, port, seconds, read_messages(sys.argv[5]))
    replay = read_messages(sys.argv[5]) if kind == "replay" else []
    deadline = time.monotonic() + seconds
    rng = random.Random(7)
    megabyte = b"\x07" * (1 << 20)
    long_frame = frame(b"\x5a" * (64 << 10), more=True)
    connections = messages = sent = cut = 0
    try:
        while time.monotonic() < deadline:
            try:
                s = socket.create_connection((host, port), timeout=5)
            except OSError:
                time.sleep(0.05)
                continue
            connections += 1
            s.settimeout(1)
            try:
                s.sendall(GREETING + READY)
                if kind == "endless":
                    messages += 1
                    on_this = 0
                    while on_this < (256 << 20) and time.monotonic() < deadline:
                        s.sendall(long_frame)
                        on_this += len(long_frame)
                        sent += len(long_frame)
                else:
                    for i in range(40 if kind == "replay" else 20):
                        if time.monotonic() >= deadline:
                            break
                        if kind == "garbage":
                            frames = [os.urandom(rng.randint(1, 2000)) for _ in range(rng.randint(1, 3))]
                        elif kind == "oversized":
                            frames = [megabyte] * 3 if i % 2 == 0 else [b"\x01\x02\x03"] * 12
                        else:
                            frames = replay[i % len(replay)]
                        data = message(frames)
                        s.sendall(data)
                        sent += len(data)
                        messages += 1
                        time.sleep(0.0005)  # a load generator's pace
                    time.sleep(0.02)  # let them arrive before this connection closes
            except (socket.timeout, TimeoutError):
                pass  # the other side stopped reading: start again
            except OSError:
                cut += 1  # reset or closed by the other side
            finally:
                s.close()
    finally:
        # Also when stopped by SIGTERM (sys.exit raises SystemExit): the test reads this tally.
        print(f"connections {connections} messages {messages} bytes {sent} cut {cut}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
