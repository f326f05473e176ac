"""Test-wide setup: the helper modules in this folder (slow_runs, plugin_dist) import from any sub-folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
