"""Runnable artifacts: a language, an entry, files, packages and a revision
that every write names (docs/control-artifacts.md)."""
