"""``python -m pftlite``: the command line."""

from pftlite.cli import main

if __name__ == "__main__":
    main()
