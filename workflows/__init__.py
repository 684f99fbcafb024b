"""Deterministic workflow code only; no I/O imports (see README, "Determinism")."""
