"""``python -m interop`` runs the command line."""

from interop.cli.main import main

if __name__ == "__main__":
    main()
