"""OEC.sh API simulator: a faithful in-memory stand-in for api.oec.sh (contract: docs/oec-api.md).

Entry points: :func:`create_app` (aiohttp application), :class:`SimulatorConfig` (defaults and the
variant switches of docs/oec-api.md §1), :class:`ManualClock` (time control in tests) and the CLI
``python -m oec_simulator`` / ``oec-simulator``. The live simulator state of an app is
``app[SIM_KEY]`` (a :class:`Simulator`).
"""

from .api import SIM_KEY
from .app import create_app
from .clock import Clock, ManualClock
from .config import (
    DEMO_PROJECT_ID,
    DEMO_RO_KEY,
    DEMO_RW_KEY,
    KeyConfig,
    ProjectConfig,
    SimulatorConfig,
)
from .endpoints import API_PREFIX
from .runtime import Simulator

__all__ = [
    "API_PREFIX",
    "DEMO_PROJECT_ID",
    "DEMO_RO_KEY",
    "DEMO_RW_KEY",
    "SIM_KEY",
    "Clock",
    "KeyConfig",
    "ManualClock",
    "ProjectConfig",
    "Simulator",
    "SimulatorConfig",
    "create_app",
]
