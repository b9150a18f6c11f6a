"""The SQL side: tables, the engine, loading campaigns, sync state and locks."""
