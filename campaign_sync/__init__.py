"""campaign-sync: Batch (batch.com) push and in-app campaigns into SQL."""

__version__ = "0.1.0"
