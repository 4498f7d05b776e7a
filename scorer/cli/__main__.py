from scorer.cli.commands import main

main()
