"""`python -m keypaint` is the `keypaint` command."""

from keypaint.cli.app import main

if __name__ == "__main__":  # spawned worker processes (data rendering) import this module again
    main()
