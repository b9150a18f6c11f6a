from campaign_sync.cli import main

main()
