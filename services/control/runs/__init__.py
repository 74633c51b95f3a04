"""Runs of runnable artifacts: an execution plus its append-only run record
(docs/control-runs.md)."""
