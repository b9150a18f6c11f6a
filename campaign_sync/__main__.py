from campaign_sync.cli import run

run()
