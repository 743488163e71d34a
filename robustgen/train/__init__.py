"""Rewards and trainer wiring (issue: train). Imports robustgen.schemas only."""
