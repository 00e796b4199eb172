from policyctl.cli.main import main

main()
