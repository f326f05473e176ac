"""The defaults of what ``textclf classes add`` serves (light: the CLI reads them at start-up).

Why these values: :mod:`textclf.runs.served_calibration` and docs/open-vocabulary.md.
"""

from __future__ import annotations

# The head a run or model serves after classes add (chosen against "text" on the tune sets)
SERVED_HEAD = "ensemble"
# The budget: at most this much trained-class validation accuracy lost (0.02 = 2 points)
MAX_SEEN_DROP = 0.02
