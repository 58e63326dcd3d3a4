"""The harness's own tests (unit), its e2e scenarios and benchmarks."""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
