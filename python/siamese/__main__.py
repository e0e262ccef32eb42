# SPDX-License-Identifier: MIT
"""python -m siamese train|eval|compare (siamese.cli)."""
import sys

from .cli import main

sys.exit(main())
