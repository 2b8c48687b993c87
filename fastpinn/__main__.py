"""``python -m fastpinn`` runs the command line (:mod:`fastpinn.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
