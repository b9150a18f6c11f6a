"""Alembic revisions; shipped inside the package as `campaign_sync.migrations`."""
