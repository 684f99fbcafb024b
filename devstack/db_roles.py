"""The application's PostgreSQL login: a member of the least-privilege role `awfdrs_app`.

Migration 0007 creates `awfdrs_app` and its grants; the API and the worker log in as a role
that is a member of it, while migrations and `awfdrs retention` run as the owner of the tables.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import asyncpg

APP_ROLE = "awfdrs_app"


class AppLoginError(RuntimeError):
    """The application's login role cannot be set up as asked."""


def _user_and_password(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    if not parts.username:
        raise AppLoginError("AWFDRS_DATABASE_URL: must name the user the application logs in as")
    password = unquote(parts.password) if parts.password is not None else None
    return unquote(parts.username), password


# Why a role must not be the application's login, if any reason applies.
_UNFIT = """
SELECT CASE
    WHEN r.rolname = current_user THEN 'is the owner that migrates'
    WHEN r.rolsuper THEN 'is a superuser'
    WHEN EXISTS (SELECT FROM pg_class c WHERE c.relowner = r.oid
                 AND c.relnamespace = current_schema()::regnamespace) THEN 'owns tables'
END
FROM pg_roles r WHERE r.rolname = $1
"""


async def ensure_app_login(*, owner_url: str, app_url: str) -> str:
    """Create (or update the password of) the login role `app_url` names, in `awfdrs_app`."""
    user, password = _user_and_password(app_url)
    conn = await asyncpg.connect(owner_url)
    try:
        exists = await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", user)
        if reason := await conn.fetchval(_UNFIT, user):
            raise AppLoginError(
                f"AWFDRS_DATABASE_URL: connects as {user}, which {reason}; "
                "the application needs a least-privilege role of its own"
            )
        # Role names and passwords cannot be bind parameters in DDL: let the server quote them.
        statement = await conn.fetchval(
            "SELECT format('%s ROLE %I LOGIN', $1::text, $2::text)"
            " || CASE WHEN $3::text IS NULL THEN '' ELSE format(' PASSWORD %L', $3::text) END",
            "ALTER" if exists else "CREATE",
            user,
            password,
        )
        await conn.execute(statement)
        grant = await conn.fetchval(
            "SELECT format('GRANT %I TO %I', $1::text, $2::text)", APP_ROLE, user
        )
        await conn.execute(grant)
    finally:
        await conn.close()
    return user
