"""A faithful local emulation of the vendors' APIs, for tests, the demo and benchmarks."""

from source_usage.emulator.faults import FaultPlan
from source_usage.emulator.server import ALL_VENDORS, Emulator

__all__ = ["ALL_VENDORS", "Emulator", "FaultPlan"]
