"""Test-only helpers and doubles (nothing in app/ imports them)."""
