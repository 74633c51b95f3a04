"""Sessions: a sandbox that lives across calls (docs/sessions.md)."""
