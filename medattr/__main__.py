"""``python -m medattr`` runs the command line."""

import sys

from medattr.cli import main

sys.exit(main())
