"""entra_sandbox: a local stand-in for Microsoft Entra ID, managed identity and the
resource APIs the MSSP portal probes. See README.md."""

from .directory import ScenarioError

__all__ = ["ScenarioError"]
