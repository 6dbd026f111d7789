from fmlab.cli import main

main()
