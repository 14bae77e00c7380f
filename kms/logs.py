"""Structured logging with secret redaction.

``configure()`` sends every log event (kms's and the libraries') to one stream, one event per line, as readable text
(default) or JSON. Every line is redacted after it is formatted, tracebacks included, so a secret that reaches a log
call by mistake is masked rather than written: BIP39 mnemonics (runs of 12 or more words of the English list), hex
strings of 64 or more digits (private keys, seeds, raw transactions; with or without 0x), WIFs, extended private keys
and other long base58 strings, Stellar and XRP secret seeds, bech32 secret keys, base64 64-byte keys, and the exact
values registered with ``register_secret`` (passwords, credentials) or ``register_api_key`` (shown as upstream's
checkconfig mask).

A transaction hash looks like a private key (64 hex digits), so in free text it is masked too. Public identifiers go
in structured fields instead (``extra={"txId": ...}``; the names in ``PUBLIC_FIELDS``: pendingId, chain, txId,
signatureId(s), address(es), withdrawalId): those are written as given, without the masks that would hit public
identifiers (hex, long base58, WIF-length base58; registered values and the other secret shapes are still masked),
provided each value is one short token (no whitespace, at most ``MAX_PUBLIC_LENGTH`` characters), so a
mnemonic, a sentence or a blob passed there by mistake is redacted like free text. Other structured fields are
redacted string by string; in JSON they are JSON values (numbers, lists, objects), not Python reprs.

Redaction is the second line of defence; the first is never passing a secret to a log call.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from functools import lru_cache
from types import TracebackType
from typing import Any, TextIO

from kms.errors import UsageError
from kms.hygiene import SecretBuffer
from kms.masking import mask_api_key

REDACTED = "[REDACTED]"
MIN_MNEMONIC_WORDS = 12
MIN_REGISTERED_LENGTH = 4
FORMATS = ("text", "json")

_B58 = "1-9A-HJ-NP-Za-km-z"
# Shapes that public identifiers share: transaction hashes are 64 hex digits, Solana transaction signatures 87-88
# base58 characters, and some base32 ids (Algorand transaction ids) can look like a WIF. Public fields skip these.
_AMBIGUOUS_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # hex keys, seeds and raw transactions (and, unavoidably, 32-byte hashes)
    (re.compile(r"(?<![0-9A-Fa-f])(?:0[xX])?[0-9A-Fa-f]{64,}(?![0-9A-Fa-f])"), "[REDACTED-HEX]"),
    # extended keys (xprv/tprv/..., 111 chars), Solana 64-byte secret keys (87-88 chars), other long base58
    (re.compile(rf"(?<![{_B58}])[{_B58}]{{80,}}(?![{_B58}])"), "[REDACTED-KEY]"),
    # WIF private keys (51-52 base58 chars, every coin's version byte)
    (re.compile(rf"(?<![{_B58}])[{_B58}]{{51,52}}(?![{_B58}])"), "[REDACTED-WIF]"),
)
# Shapes no public identifier has: applied to public fields too.
_UNAMBIGUOUS_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # extended private keys by their prefix (xprv, tprv, yprv, zprv, Yprv, Zprv, uprv, vprv, ...)
    (re.compile(rf"(?<![{_B58}])[a-zA-Z]prv[{_B58}]{{100,}}(?![{_B58}])"), "[REDACTED-KEY]"),
    # bech32 secret keys (Cardano xprv1..., ed25519_sk1..., addr_xsk1...)
    (re.compile(r"(?<![a-z0-9_])[a-z0-9_]*(?:sk|prv)1[02-9ac-hj-np-z]{50,}(?![a-z0-9])"), "[REDACTED-KEY]"),
    # Stellar secret seeds
    (re.compile(r"(?<![A-Z2-7])S[A-Z2-7]{55}(?![A-Z2-7])"), "[REDACTED-KEY]"),
    # XRP family seeds (secp256k1: 29 chars, ed25519 "sEd...": 31 chars)
    (re.compile(rf"(?<![{_B58}])s[{_B58}]{{28,30}}(?![{_B58}])"), "[REDACTED-KEY]"),
    # base64 64-byte and 32-byte keys (Algorand, ed25519)
    (re.compile(r"(?<![A-Za-z0-9+/])(?:[A-Za-z0-9+/]{86}==|[A-Za-z0-9+/]{43}=)(?![A-Za-z0-9+/=])"), "[REDACTED-KEY]"),
)
# In free text: every shape, in this order (hex first, so a long hex run is one mask).
_PATTERNS = (_AMBIGUOUS_PATTERNS[0], _UNAMBIGUOUS_PATTERNS[1], *_AMBIGUOUS_PATTERNS[1:], *_UNAMBIGUOUS_PATTERNS[2:])
# A mnemonic's words may be separated by spaces, newlines (also escaped as \n), commas, quotes and brackets (a JSON
# list of words), or numbering ("1. abandon 2. ability").
_WORD = re.compile(r"(?:(?<=\\[nrt])|(?<![A-Za-z\\]))[A-Za-z]+")
_WORD_GAP = re.compile(r"(?:[\s,;:.\"'\[\](){}0-9]|\\[nrt])+")


@lru_cache(maxsize=1)
def _bip39_english() -> frozenset[str]:
    from bip_utils import Bip39Languages
    from bip_utils.bip.bip39.bip39_mnemonic_utils import Bip39WordsListGetter

    words = Bip39WordsListGetter().GetByLanguage(Bip39Languages.ENGLISH)
    return frozenset(words.GetWordAtIdx(i) for i in range(words.Length()))


def _mnemonic_spans(text: str) -> list[tuple[int, int]]:
    words = _bip39_english()
    spans: list[tuple[int, int]] = []
    run_start = run_end = -1
    run_len = 0
    for match in _WORD.finditer(text):
        start, end = match.span()
        if match.group().lower() in words:
            if run_len and _WORD_GAP.fullmatch(text, run_end, start):
                run_len += 1
            else:
                if run_len >= MIN_MNEMONIC_WORDS:
                    spans.append((run_start, run_end))
                run_start, run_len = start, 1
            run_end = end
        else:
            if run_len >= MIN_MNEMONIC_WORDS:
                spans.append((run_start, run_end))
            run_len = 0
    if run_len >= MIN_MNEMONIC_WORDS:
        spans.append((run_start, run_end))
    return spans


def _escaped_forms(text: str) -> set[str]:
    """How a registered value can appear in a formatted line: as is, JSON-escaped, repr-escaped."""
    forms = {text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1], repr(text)[1:-1]}
    return {form for form in forms if form}


class Redactor:
    """Masks secret-looking text and registered values. Registered values are kept in wipeable buffers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: list[tuple[SecretBuffer, str]] = []

    def register(self, secret: str | SecretBuffer, replacement: str = REDACTED) -> None:
        """Mask every occurrence of ``secret`` (values shorter than 4 characters are ignored: masking them would
        shred every line, and they protect nothing)."""
        text = secret.text() if isinstance(secret, SecretBuffer) else secret
        if len(text) < MIN_REGISTERED_LENGTH:
            return
        with self._lock:
            for form in _escaped_forms(text):
                encoded = SecretBuffer(bytearray(form.encode("utf-8", "surrogatepass")))
                if any(existing == encoded for existing, _ in self._values):
                    encoded.wipe()
                    continue
                self._values.append((encoded, replacement))
            # Longest first, so a value that contains another is masked whole.
            self._values.sort(key=lambda item: -len(item[0]))

    def clear(self) -> None:
        with self._lock:
            for value, _ in self._values:
                value.wipe()
            self._values.clear()

    def redact(self, text: str) -> str:
        if not text:
            return text
        text = self._redact_registered(text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        spans = _mnemonic_spans(text)
        for start, end in reversed(spans):
            text = text[:start] + "[REDACTED-MNEMONIC]" + text[end:]
        return text

    def redact_public(self, text: str) -> str:
        """For a public identifier: registered values and the secret shapes no public identifier has."""
        text = self._redact_registered(text)
        for pattern, replacement in _UNAMBIGUOUS_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def _redact_registered(self, text: str) -> str:
        with self._lock:
            if not self._values:
                return text
            data = text.encode("utf-8", "surrogatepass")
            hits: list[tuple[int, int, str]] = []
            for value, replacement in self._values:
                needle = value.view()
                start = data.find(needle)
                while start >= 0:
                    hits.append((start, start + len(needle), replacement))
                    start = data.find(needle, start + len(needle))
        if not hits:
            return text
        out = bytearray()
        position = 0
        for start, end, replacement in sorted(hits, key=lambda hit: (hit[0], -hit[1])):
            if start < position:  # inside a longer hit already masked
                continue
            out += data[position:start] + replacement.encode()
            position = end
        out += data[position:]
        return out.decode("utf-8", "replace")


REDACTOR = Redactor()


def register_secret(secret: str | SecretBuffer, replacement: str = REDACTED) -> None:
    """Mask this exact value (a password, a credential) in every log line from now on."""
    REDACTOR.register(secret, replacement)


def register_api_key(api_key: str | SecretBuffer) -> None:
    """Show this API key only as upstream's checkconfig mask (first 6, stars, last 6)."""
    text = api_key.text() if isinstance(api_key, SecretBuffer) else api_key
    REDACTOR.register(text, mask_api_key(text))


def redact(text: str) -> str:
    return REDACTOR.redact(text)


def register_configured_secrets(settings: Mapping[str, str]) -> None:
    """Register every credential among the settings (kms.settings.SECRET_SETTINGS, the audit HMAC key); the Tatum
    API key as its mask. Call once at start, after loading the settings."""
    from kms.audit import HMAC_KEY_SETTING
    from kms.settings import SECRET_SETTINGS

    for key in sorted(SECRET_SETTINGS | {HMAC_KEY_SETTING}):
        value = settings.get(key)
        if not value or not value.strip():
            continue
        if key == "TATUM_API_KEY":
            register_api_key(value.strip())
        else:
            register_secret(value)
            register_secret(value.strip())


_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}
_CONTEXT_KEYS = ("pendingId", "chain")
PUBLIC_FIELDS = frozenset(
    {*_CONTEXT_KEYS, "txId", "signatureId", "signatureIds", "address", "addresses", "withdrawalId", "chains"}
)
"""Structured fields that hold public identifiers only: written unmasked (see the module docstring)."""
MAX_PUBLIC_LENGTH = 128
MAX_PUBLIC_ITEMS = 100
_MAX_DEPTH = 4
_PUBLIC_TOKEN = re.compile(rf"[^\s]{{1,{MAX_PUBLIC_LENGTH}}}")


def _public_value(value: object) -> Any:
    """A public identifier (or a list of them) as given, when each is one short token; otherwise redacted."""
    if isinstance(value, list | tuple) and len(value) <= MAX_PUBLIC_ITEMS:
        return [_public_value(item) for item in value]
    if isinstance(value, str) and _PUBLIC_TOKEN.fullmatch(value):
        return REDACTOR.redact_public(value)
    return _structured(value, 0)


def _structured(value: object, depth: int) -> Any:
    """A field value as JSON data, every string redacted; containers bounded in depth."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(value)
    if depth < _MAX_DEPTH and isinstance(value, Mapping):
        return {redact(str(key)): _structured(item, depth + 1) for key, item in value.items()}
    if depth < _MAX_DEPTH and isinstance(value, list | tuple | set | frozenset):
        return [_structured(item, depth + 1) for item in value]
    return redact(str(value))


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    """The record's fields, every string redacted."""
    event: dict[str, Any] = {
        "time": _timestamp(record),
        "level": record.levelname,
        "logger": record.name,
    }
    for key in _CONTEXT_KEYS:
        value = record.__dict__.get(key)
        if value is not None:
            event[key] = _public_value(value if isinstance(value, str) else str(value))
    event["message"] = redact(record.getMessage())
    for key, value in record.__dict__.items():
        if key in _STANDARD_ATTRS or key in _CONTEXT_KEYS or key in event or key.startswith("_"):
            continue
        event[key] = _public_value(value) if key in PUBLIC_FIELDS else _structured(value, 0)
    exception = record.exc_text
    if record.exc_info:
        exception = formatter.formatException(record.exc_info)
    if exception:
        event["exception"] = redact(exception)
    if record.stack_info:
        event["stack"] = redact(formatter.formatStack(record.stack_info))
    return event


def _one_line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def _text_value(value: object) -> str:
    """A field in the text format: strings as they are, numbers and containers as JSON (one line)."""
    if isinstance(value, str):
        return _one_line(value)
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``2024-05-01T12:00:00.000Z INFO    kms.daemon pendingId=... chain=ETH: message key=value | traceback``."""

    def format(self, record: logging.LogRecord) -> str:
        event = _event(record, self)
        head = f"{event.pop('time')} {event.pop('level'):<7} {event.pop('logger')}"
        context = "".join(f" {key}={_text_value(event.pop(key))}" for key in _CONTEXT_KEYS if key in event)
        message = _one_line(event.pop("message"))
        tail = [event.pop(key) for key in ("exception", "stack") if key in event]
        extras = "".join(f" {key}={_text_value(value)}" for key, value in event.items())
        line = f"{head}{context}: {message}{extras}"
        for block in tail:
            line += " | " + _one_line(str(block))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, [pendingId, chain], message, extras, [exception]."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_event(record, self), ensure_ascii=False, default=str)


class RedactionFilter(logging.Filter):
    """For handlers kms did not configure: bakes the message and traceback into redacted text on the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class TransactionLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Puts pendingId and chain on every line; per-call ``extra`` adds to them instead of replacing them."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


def transaction_logger(logger: logging.Logger, pending_id: str, chain: str) -> TransactionLogger:
    return TransactionLogger(logger, {"pendingId": pending_id, "chain": chain})


_installed: logging.Handler | None = None
_NOISY_LIBRARIES: tuple[str, ...] = ("httpx", "httpcore", "urllib3", "botocore", "boto3", "azure", "hvac")


def configure(fmt: str = "text", level: str | int = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Route all logging to ``stream`` (stderr by default) as redacted one-line events; idempotent."""
    global _installed
    if fmt not in FORMATS:
        raise UsageError(f"log format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    numeric = _level(level)
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(numeric)
    _installed = handler
    # Client libraries log every request at INFO; keep them to warnings unless debugging.
    for name in _NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING if numeric > logging.DEBUG else logging.NOTSET)
    logging.captureWarnings(True)
    _install_excepthooks()
    return handler


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.strip().upper())
    if not isinstance(value, int):
        raise UsageError(f"unknown log level '{level}'; use DEBUG, INFO, WARNING or ERROR")
    return value


def _install_excepthooks() -> None:
    """Uncaught exceptions go through logging (and its redaction) instead of straight to stderr."""
    crash_log = logging.getLogger("kms")

    def on_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            crash_log.warning("interrupted")
            return
        crash_log.critical("uncaught exception", exc_info=(kind, value, tb))

    def on_thread_uncaught(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or issubclass(args.exc_type, SystemExit):
            return
        name = args.thread.name if args.thread is not None else "?"
        crash_log.critical(
            "uncaught exception in thread %s", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback)
        )

    sys.excepthook = on_uncaught
    threading.excepthook = on_thread_uncaught


__all__ = [
    "FORMATS",
    "PUBLIC_FIELDS",
    "REDACTED",
    "REDACTOR",
    "JsonFormatter",
    "RedactionFilter",
    "Redactor",
    "TextFormatter",
    "TransactionLogger",
    "configure",
    "redact",
    "register_api_key",
    "register_configured_secrets",
    "register_secret",
    "transaction_logger",
]
