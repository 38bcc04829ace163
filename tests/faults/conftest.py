"""The fault suite's own pieces (chaos/ at the repo root) tested without faults: the
checker's classification, the event-file reader and the partition proxy."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
