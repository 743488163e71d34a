from robustgen.cli import main

main()
