"""Reading secrets from a terminal (no echo) or a pipe, straight into wipeable buffers."""

from __future__ import annotations

import os
import sys
import termios

from kms.hygiene import SecretBuffer, zero_bytearray

_MAX_SECRET = 64 * 1024


def _read_line(fd: int) -> SecretBuffer:
    buf = bytearray(_MAX_SECRET)
    n = 0
    try:
        while n < _MAX_SECRET:
            chunk = os.read(fd, 1)
            if not chunk or chunk in (b"\n", b"\r"):
                break
            buf[n] = chunk[0]
            n += 1
        return SecretBuffer(memoryview(buf)[:n])
    finally:
        zero_bytearray(buf)


def read_secret_line(prompt: str, fd: int) -> SecretBuffer:
    """Ask on ``fd`` (a terminal) with echo off and return the line typed."""
    try:
        old = termios.tcgetattr(fd)
    except termios.error:
        old = None
    if old is not None:
        new = termios.tcgetattr(fd)
        new[3] &= ~(termios.ECHO | termios.ECHONL)
        # Echo goes off (and stale type-ahead is flushed) before the prompt shows, so nothing typed after it echoes.
        termios.tcsetattr(fd, termios.TCSAFLUSH, new)
    try:
        os.write(fd, prompt.encode())
        return _read_line(fd)
    finally:
        if old is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)
        os.write(fd, b"\n")


def read_secret(prompt: str) -> SecretBuffer:
    """A secret from the terminal (no echo) when stdin is one, otherwise the first line of stdin."""
    if sys.stdin.isatty():
        return read_secret_line(prompt, sys.stdin.fileno())
    return _read_line(sys.stdin.fileno())
