"""Sessions on the spawner: a sandbox kept for many calls (docs/sessions.md)."""
