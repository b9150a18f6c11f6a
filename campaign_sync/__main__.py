from campaign_sync.startup import main

main()
