"""A local double of the Tatum API (and of a four-eye approval server) for tests, the demo and staging daemons."""

from kms.sandbox.admin import SandboxAdmin
from kms.sandbox.server import Sandbox
from kms.sandbox.state import FaultRule, SandboxState

__all__ = ["FaultRule", "Sandbox", "SandboxAdmin", "SandboxState"]
