"""Sealed start: a daemon that holds no password until an operator sends one over a local Unix socket.

- ``protocol``: the wire format (one request, one answer per connection) and the checks both ends share;
- ``gate``: the daemon's end (``SealedGate``), which serves only its own uid and root, logs, counts and slows down
  wrong passwords (``throttle``);
- ``client``: the operator's end (``unlock``, ``seal``, ``is_sealed``), which sends only to a listener of its own uid
  unless told another;
- ``paths``: where the socket is by default;
- ``control``: the daemon-side state (the store behind the seal), imported by the daemon only.

The daemon builds a ``SealedGate`` with a verifier ("try to open the store with this password") and a seal callback
("wipe the keys"), starts it, and waits with ``wait_unsealed()``. ``kms unlock`` calls ``unlock()``, ``kms seal`` calls
``seal()``. The password travels as raw bytes, read straight into a locked ``SecretBuffer`` on the daemon's side and
sent from one without a copy on the client's; both ends wipe it.
"""

from kms.errors import SealError
from kms.seal.client import is_sealed, seal, server_allowed, trusted_uids, unlock
from kms.seal.gate import SealedGate, peer_allowed
from kms.seal.paths import default_socket_path
from kms.seal.protocol import PeerCredentials, peer_credentials
from kms.seal.throttle import UnlockThrottle, delay_after

__all__ = [
    "PeerCredentials",
    "SealError",
    "SealedGate",
    "UnlockThrottle",
    "default_socket_path",
    "delay_after",
    "is_sealed",
    "peer_allowed",
    "peer_credentials",
    "seal",
    "server_allowed",
    "trusted_uids",
    "unlock",
]
