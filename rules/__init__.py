"""YAML policy files, their typed loader, signatures, and the Redis-backed safety primitives."""
