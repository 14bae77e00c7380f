from __future__ import annotations

import ctypes
import pickle
import resource
import subprocess
import sys

import pytest

from kms.hygiene import SecretBuffer, harden_process, zero_bytearray


def _read_memory(address: int, length: int) -> bytes:
    return ctypes.string_at(address, length)


def test_wipe_zeroes_the_same_memory() -> None:
    secret = SecretBuffer(b"correct horse battery staple")
    raw = secret.raw()
    address = ctypes.addressof((ctypes.c_char * len(raw)).from_buffer(raw))
    assert _read_memory(address, len(raw)) == b"correct horse battery staple"
    secret.wipe()
    assert _read_memory(address, len(raw)) == b"\0" * len(raw)
    assert secret.wiped


def test_context_manager_wipes() -> None:
    with SecretBuffer.from_str("hunter2hunter2") as secret:
        view = secret.raw()
        assert bytes(view) == b"hunter2hunter2"
    assert bytes(view) == b"\0" * 14


def test_repr_and_str_never_show_content() -> None:
    secret = SecretBuffer(b"abandon abandon about")
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret])):
        assert "abandon" not in text
        assert "SecretBuffer" in text


def test_mutable_input_is_zeroed_after_copy() -> None:
    source = bytearray(b"private-key-material")
    secret = SecretBuffer(source)
    assert source == bytearray(len(source))
    assert secret.bytes() == b"private-key-material"


def test_cannot_be_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(SecretBuffer(b"x"))


def test_constant_time_equality() -> None:
    assert SecretBuffer(b"same") == SecretBuffer(b"same")
    assert SecretBuffer(b"same") != SecretBuffer(b"diff")


def test_zero_bytearray_in_place() -> None:
    data = bytearray(b"\xff" * 64)
    before = ctypes.addressof((ctypes.c_char * 64).from_buffer(data))
    zero_bytearray(data)
    assert data == bytearray(64)
    assert ctypes.addressof((ctypes.c_char * 64).from_buffer(data)) == before


def test_harden_process_in_a_subprocess() -> None:
    code = (
        "import resource, json\n"
        "from kms.hygiene import harden_process, getpid_dumpable\n"
        "r = harden_process()\n"
        "print(json.dumps([r.core_dumps_disabled, r.not_dumpable, resource.getrlimit(resource.RLIMIT_CORE)[0],"
        " getpid_dumpable()]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    core_off, not_dumpable, core_limit, dumpable = __import__("json").loads(out)
    assert core_off is True and core_limit == 0
    if sys.platform.startswith("linux"):
        assert not_dumpable is True and dumpable is False


def test_harden_process_reports_state() -> None:
    report = harden_process()
    assert resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)
    assert report.core_dumps_disabled
    assert set(report.as_dict()) == {"coreDumpsDisabled", "notDumpable", "mlockAvailable"}


_PAGE_SHARING = """
import json
from kms import hygiene
from kms.hygiene import SecretBuffer

def locked_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmLck:"):
            return int(line.split()[1])
    return -1

buffers = [SecretBuffer(b"k" * 32) for _ in range(64)]
pages = [min(hygiene._pages(b.raw())) for b in buffers]
first = next(b for b, p in zip(buffers, pages) if pages.count(p) > 1)
page = min(hygiene._pages(first.raw()))
mates = [b for b, p in zip(buffers, pages) if p == page and b is not first]
result = {"locked": first.locked, "mates": len(mates), "before": locked_kib()}
for b in buffers:
    if b is not first and all(b is not m for m in mates):
        b.wipe()
result["alone"] = locked_kib()
first.wipe()
result["after"] = locked_kib()
print(json.dumps(result))
"""


def test_wiping_one_buffer_keeps_its_page_neighbours_locked() -> None:
    out = subprocess.run([sys.executable, "-c", _PAGE_SHARING], capture_output=True, text=True, check=True).stdout
    result = __import__("json").loads(out)
    if not result["locked"] or result["mates"] == 0 or result["before"] < 0:
        pytest.skip("mlock unavailable, or no two buffers shared a page")
    # The page holding `first` also holds its mates: wiping `first` must leave that page locked.
    assert result["alone"] > 0
    assert result["after"] == result["alone"]


def test_finaliser_inside_mlock_does_not_deadlock() -> None:
    """A SecretBuffer collected by the garbage collector while another is being locked (same thread, guard held)
    used to wait for the guard forever."""
    import gc

    from kms import hygiene

    victim = SecretBuffer(b"k" * 32)
    if not victim.locked:
        pytest.skip("mlock unavailable")
    victim_pages = hygiene._pages(victim.raw())
    with hygiene._page_lock_guard:
        # What a GC pass inside _mlock does: finalise another buffer while the guard is held.
        victim.__del__()
    assert victim.wiped
    assert hygiene._deferred_unlocks and hygiene._deferred_unlocks[-1] == victim_pages
    fresh = SecretBuffer(b"n" * 32)  # the next lock takes the deferred unlocks
    assert not hygiene._deferred_unlocks
    fresh.wipe()
    gc.collect()
