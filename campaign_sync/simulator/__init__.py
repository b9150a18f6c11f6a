"""A local stand-in for the Batch Campaigns API: same routes, errors and traps, plus knobs.

Batch has no sandbox (list and view accept live keys only), so users, tests and
benchmarks run against this instead.
"""

from campaign_sync.simulator.app import Simulator, SimulatorKnobs
from campaign_sync.simulator.data import CampaignStore, generate_store
from campaign_sync.simulator.server import SimulatorServer

__all__ = ["CampaignStore", "Simulator", "SimulatorKnobs", "SimulatorServer", "generate_store"]
