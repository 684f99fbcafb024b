"""Keyword-only service functions (session first) shared by routes, the CLI and activities."""
