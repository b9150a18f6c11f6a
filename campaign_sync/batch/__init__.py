"""The Batch Campaigns API 1.1: endpoints, errors, retry and rate policy, client, sweep.

No SQL lives here; the client hands plain JSON to whoever calls it.
"""

from campaign_sync.batch.client import GONE, BatchClient, ClientOptions
from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.batch.errors import BatchError

__all__ = ["GONE", "BatchClient", "BatchError", "CampaignType", "ClientOptions"]
