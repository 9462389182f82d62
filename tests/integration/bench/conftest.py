"""bench/ is not installed (it is the repository's, not the package's): its tests import it
from the repository's root."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[3])
if ROOT not in sys.path:
    sys.path.append(ROOT)
