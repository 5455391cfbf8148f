"""Where the checkout the tests run from lies."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: lab2core/, tasks/, tests/, ...
