"""The shape of a `kms` subcommand: its handler, and the factory ``kms.cli.main`` hands each command module's
``register`` to add a subcommand with its help and handler."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], int]
CommandFactory = Callable[[str, str, Handler], argparse.ArgumentParser]
