"""What `kms unlock` does, for tests: ask on the terminal with the prompt provider, then send it to the socket.

Usage: python unlock_with_prompt.py SOCKET_PATH. Exit 0 unsealed, 3 wrong password, 1 any other refusal.
"""

from __future__ import annotations

import sys

from backends import get_provider
from kms.errors import KmsError, WrongPasswordError
from kms.seal import unlock


def main(socket_path: str) -> int:
    try:
        password = get_provider("prompt", {}).fetch()
        print(unlock(socket_path, password), flush=True)
        return 0
    except WrongPasswordError as exc:
        print(exc, flush=True)
        return 3
    except KmsError as exc:
        print(exc, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
