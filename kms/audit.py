"""The audit log: one JSON line per signing decision, hash-chained, fsynced per record, optionally HMAC'd.

Each record carries ``seq`` (1, 2, ...), ``time`` (UTC ISO-8601) and ``prev``: the SHA-256 (hex) of the previous
record's line as written (without its newline; the first record's ``prev`` is 64 zeros). Editing, deleting,
reordering or cutting out records breaks the chain at the first record after the change, which ``verify_file``
reports. Anyone who can write the file can still rewrite the whole chain with fresh hashes; with an HMAC key every
record also carries ``hmac`` (HMAC-SHA256 over the record's canonical JSON without ``hmac``), which that person cannot
recompute. Removing records from the *end* of the file leaves a valid shorter chain: compare the count and last hash
that ``kms audit verify`` prints with a copy kept elsewhere to detect that.

The HMAC key is its own secret (``TATUM_KMS_AUDIT_HMAC_KEY`` or ``TATUM_KMS_AUDIT_HMAC_KEY_FILE``, at least 32
characters, e.g. ``openssl rand -hex 32``), run through HKDF-SHA256 to the 32-byte key. It is deliberately not derived
from the store password: HMACs of a low-entropy password would let anyone holding the audit file guess the password
offline at hash speed instead of Argon2id speed, and whoever verifies the log does not need the store password.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import stat
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kms.errors import KmsError, UsageError
from kms.hygiene import SecretBuffer

GENESIS_HASH = "0" * 64
HMAC_KEY_SETTING = "TATUM_KMS_AUDIT_HMAC_KEY"
HMAC_KEY_FILE_SETTING = "TATUM_KMS_AUDIT_HMAC_KEY_FILE"
MIN_KEY_MATERIAL = 32
_HKDF_INFO = b"kms audit-log HMAC-SHA256 v1"
_RESERVED = frozenset({"seq", "time", "prev", "hmac"})
_TAIL_BLOCK = 64 * 1024
_MAX_RECORD = 16 * 1024 * 1024


class AuditLogError(KmsError):
    """The audit log cannot be opened or appended to (its message names the file, never a secret)."""


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    count: int
    """Records that verified (all of them when ``ok``)."""
    first_bad: int | None
    """1-based line number of the first record that fails, or None."""
    reason: str
    last_hash: str = GENESIS_HASH
    """SHA-256 of the last good record's line (compare with a copy kept elsewhere to detect tail truncation)."""
    hmac_checked: bool = False

    def as_dict(self) -> dict[str, object]:
        result: dict[str, object] = {"ok": self.ok, "count": self.count}
        if self.first_bad is not None:
            result["firstBad"] = self.first_bad
        result["reason"] = self.reason
        result["lastHash"] = self.last_hash
        result["hmacChecked"] = self.hmac_checked
        return result


def derive_hmac_key(material: SecretBuffer) -> SecretBuffer:
    """The 32-byte HMAC key from the configured key material (HKDF-SHA256, fixed domain-separating info)."""
    if len(material) < MIN_KEY_MATERIAL:
        raise UsageError(
            f"the audit HMAC key must be at least {MIN_KEY_MATERIAL} characters "
            "(for example the output of: openssl rand -hex 32)"
        )
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
    # cryptography accepts only bytes: the copy lives as briefly as this call.
    return SecretBuffer(bytearray(hkdf.derive(material.bytes())))


def hmac_key_from_settings(settings: Mapping[str, str]) -> SecretBuffer | None:
    """The HMAC key configured by TATUM_KMS_AUDIT_HMAC_KEY or TATUM_KMS_AUDIT_HMAC_KEY_FILE; None when neither."""
    value = settings.get(HMAC_KEY_SETTING)
    file_name = settings.get(HMAC_KEY_FILE_SETTING)
    if value and value.strip() and file_name and file_name.strip():
        raise UsageError(f"set {HMAC_KEY_SETTING} or {HMAC_KEY_FILE_SETTING}, not both")
    if file_name and file_name.strip():
        with read_key_file(Path(file_name.strip()).expanduser()) as material:
            return derive_hmac_key(material)
    if value and value.strip():
        with SecretBuffer.from_str(value.strip()) as material:
            return derive_hmac_key(material)
    return None


def read_key_file(path: Path) -> SecretBuffer:
    """Key material from a file that only its owner can read (a trailing newline is ignored)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"cannot open the audit HMAC key file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UsageError(
                f"the audit HMAC key file {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); chmod 600 it"
            )
        buf = bytearray(info.st_size + 1)
        n = os.readv(fd, [buf])
    finally:
        os.close(fd)
    while n and buf[n - 1] in (0x0A, 0x0D):
        n -= 1
    key = SecretBuffer(memoryview(buf)[:n])
    buf[:] = bytes(len(buf))
    return key


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _canonical(record: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "hmac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _record_hmac(key: SecretBuffer, record: Mapping[str, Any]) -> str:
    return hmac.new(key.raw(), _canonical(record), hashlib.sha256).hexdigest()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _parse(line: bytes) -> dict[str, Any]:
    """One record; ValueError with a short reason when it is not a JSON object with a sane chain header."""
    try:
        record = json.loads(line, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a valid JSON record ({exc.__class__.__name__})") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    seq, prev = record.get("seq"), record.get("prev")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise ValueError("has no integer 'seq'")
    if not isinstance(prev, str) or len(prev) != 64:
        raise ValueError("has no 64-hex 'prev'")
    return record


def _check_hmac(key: SecretBuffer, record: Mapping[str, Any]) -> str | None:
    tag = record.get("hmac")
    if not isinstance(tag, str):
        return "has no 'hmac' but an HMAC key was given"
    if not hmac.compare_digest(tag.encode(), _record_hmac(key, record).encode()):
        return "HMAC does not match (the record was altered or written without the key)"
    return None


def _lines(path: Path) -> Iterator[tuple[bytes, bool]]:
    """(line without newline, complete) for each line; only the last can be incomplete."""
    with path.open("rb") as f:
        for raw in f:
            if raw.endswith(b"\n"):
                yield raw[:-1], True
            else:
                yield raw, False


def _problem(
    number: int, line: bytes, complete: bool, prev_hash: str, key: SecretBuffer | None, keyed: bool | None
) -> str | None:
    """Why record ``number`` does not continue the chain that ends in ``prev_hash``; None when it does. ``keyed``:
    whether the records before carry HMACs (None for the first record)."""
    if not complete:
        return "is incomplete (the file ends in the middle of a record: a torn write or a truncation)"
    try:
        record = _parse(line)
    except ValueError as exc:
        return str(exc)
    if record["seq"] != number:
        return f"sequence number is {record['seq']}, expected {number} (records were removed, inserted or reordered)"
    if record["prev"] != prev_hash:
        if number == 1:
            return "'prev' is not the genesis hash (records were removed from the start)"
        return (
            f"'prev' is not the SHA-256 of record {number - 1} "
            f"(record {number - 1} was altered, or records were removed or reordered)"
        )
    if key is not None:
        return _check_hmac(key, record)
    if keyed is not None and ("hmac" in record) != keyed:
        # A log is written with a key throughout or without one throughout; without the key the tags cannot be
        # checked, but a change between the two is visible (a record appended by someone without the key).
        if keyed:
            return "has no 'hmac' but the records before it do (appended without the key)"
        return "has an 'hmac' but the records before it do not"
    return None


def verify_file(path: Path | str, hmac_key: SecretBuffer | None = None) -> AuditVerification:
    """Check the whole chain (and every HMAC when a key is given); report the first record that fails."""
    path = Path(path)
    checked = hmac_key is not None
    prev_hash = GENESIS_HASH
    count = 0
    keyed: bool | None = None
    try:
        if not path.is_file():
            raise AuditLogError(f"no audit log at {path}")
        for number, (line, complete) in enumerate(_lines(path), start=1):
            problem = _problem(number, line, complete, prev_hash, hmac_key, keyed)
            if problem:
                return AuditVerification(False, count, number, f"record {number}: {problem}", prev_hash, checked)
            if keyed is None:
                keyed = "hmac" in _parse(line)
            prev_hash = line_hash(line)
            count += 1
    except OSError as exc:
        raise AuditLogError(f"cannot read the audit log {path}: {exc.strerror}") from None
    note = "" if checked else " (HMACs not checked: no key given)"
    return AuditVerification(True, count, None, f"{count} records, chain intact{note}", prev_hash, checked)


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    """Appends records to one audit file. Thread-safe; an advisory lock on the file also keeps two processes that
    share it from forking the chain (each append re-reads the tail when the file grew under it). A file that shrank
    under it (truncated, copytruncate-rotated) is refused rather than restarted: do not rotate a log that is open;
    start the daemon with a new file instead."""

    def __init__(self, path: Path, hmac_key: SecretBuffer | None = None) -> None:
        self.path = Path(path)
        self._key = SecretBuffer(hmac_key.view()) if hmac_key is not None else None
        self._lock = threading.Lock()
        self._seq = 0
        self._prev = GENESIS_HASH
        self._end = 0
        created = not self.path.exists()
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise AuditLogError(f"cannot open the audit log {self.path}: {exc.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(self._fd).st_mode):
                raise AuditLogError(f"the audit log {self.path} is not a regular file")
            if created:
                _fsync_directory(self.path.parent)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                self._load_tail()
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(self._fd)
            if self._key is not None:
                self._key.wipe()
            raise

    @property
    def seq(self) -> int:
        """The sequence number of the last record (0 for an empty log)."""
        return self._seq

    @property
    def last_hash(self) -> str:
        return self._prev

    def append(self, record: Mapping[str, object]) -> dict[str, Any]:
        """Write one record (fsynced before returning) and return it as written, with seq, time, prev and hmac."""
        clash = _RESERVED.intersection(record)
        if clash:
            raise AuditLogError(f"audit record fields {sorted(clash)} are set by the audit log itself")
        with self._lock:
            if self._fd < 0:
                raise AuditLogError(f"the audit log {self.path} is closed")
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(self._fd).st_size
                if size < self._end:
                    # Never restart the chain on a file that lost records under us: that would hide the loss.
                    raise self._broken(f"it shrank from {self._end} to {size} bytes since the last record")
                if size > self._end:  # another process appended: continue after its record
                    self._load_tail()
                full: dict[str, Any] = {"seq": self._seq + 1, "time": _utc_now(), **record, "prev": self._prev}
                if self._key is not None:
                    full["hmac"] = _record_hmac(self._key, full)
                try:
                    line = json.dumps(full, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
                except (TypeError, ValueError) as exc:
                    raise AuditLogError(f"audit record is not JSON-serialisable ({type(exc).__name__})") from None
                data = line + b"\n"
                written = 0
                while written < len(data):
                    written += os.write(self._fd, data[written:])
                os.fsync(self._fd)
                self._seq = full["seq"]
                self._prev = line_hash(line)
                self._end = os.fstat(self._fd).st_size
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        return full

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._key is not None:
                self._key.wipe()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _load_tail(self) -> None:
        """Take seq and prev from the last record; refuse a tail that is torn, unparsable or keyed differently."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            self._seq, self._prev, self._end = 0, GENESIS_HASH, 0
            return
        line = self._read_last_line(size)
        try:
            record = _parse(line)
        except ValueError as exc:
            raise self._broken(f"its last record {exc}") from None
        if self._key is not None:
            problem = _check_hmac(self._key, record)
            if problem:
                raise self._broken(f"its last record {problem}")
        elif "hmac" in record:
            raise self._broken("its records carry HMACs but no audit HMAC key is configured")
        if record["seq"] < 1:
            raise self._broken("its last record has a sequence number below 1")
        self._seq, self._prev, self._end = record["seq"], line_hash(line), size

    def _read_last_line(self, size: int) -> bytes:
        last = os.pread(self._fd, 1, size - 1)
        if last != b"\n":
            raise self._broken("it ends in the middle of a record (a torn write or a truncation)")
        start = size - 1  # the line ends just before the final newline
        chunks: list[bytes] = []
        while start > 0:
            step = min(_TAIL_BLOCK, start)
            block = os.pread(self._fd, step, start - step)
            cut = block.rfind(b"\n")
            if cut >= 0:
                chunks.append(block[cut + 1 :])
                break
            chunks.append(block)
            start -= step
            if size - start > _MAX_RECORD:
                raise self._broken("its last line is far too long to be a record")
        return b"".join(reversed(chunks))

    def _broken(self, why: str) -> AuditLogError:
        return AuditLogError(
            f"refusing to append to the audit log {self.path}: {why}; run 'kms audit verify {self.path}' "
            "and start a new log file"
        )


def _fsync_directory(directory: Path) -> None:
    """Make a newly created file's directory entry durable too."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = [
    "GENESIS_HASH",
    "HMAC_KEY_FILE_SETTING",
    "HMAC_KEY_SETTING",
    "AuditLog",
    "AuditLogError",
    "AuditVerification",
    "derive_hmac_key",
    "hmac_key_from_settings",
    "line_hash",
    "read_key_file",
    "verify_file",
]
