"""`python -m irx` (and `torchrun -m irx train ...`) run the command-line interface."""

from irx.cli.main import main

if __name__ == "__main__":
    main()
