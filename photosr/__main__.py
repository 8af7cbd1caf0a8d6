from photosr.cli import main

main()
