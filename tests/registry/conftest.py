"""Fixtures for the registry suite (runs on SQLite and PostgreSQL); defined in db.py."""

from __future__ import annotations

from tests.registry.db import backend, connection, migrated_engine, models_dir, seeded, sessions

__all__ = ["backend", "connection", "migrated_engine", "models_dir", "seeded", "sessions"]
