"""The client's tests reuse the simulator's fixtures: a simulator served over real HTTP."""

from tests.simulator.conftest import clock, sim, start_sim

__all__ = ["clock", "sim", "start_sim"]
