"""The demo knowledge base (SOPs, catalogue, teams, taxonomy) and its validating loader."""

from pathlib import Path

KB_DIR = Path(__file__).resolve().parent
