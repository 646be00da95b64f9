"""``python -m lifecircle`` runs the command-line interface."""

import sys

from .cli import main, setup_process

setup_process()
sys.exit(main())
