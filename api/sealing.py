"""The API's `SecretBox` (built by `create_app` from AWFDRS_SECRET_KEY) as a dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from models.secret_box import SecretBox


async def get_secret_box(request: Request) -> SecretBox:
    """Return the box sealing and opening stored secrets."""
    box: SecretBox = request.app.state.secret_box
    return box


SecretBoxDep = Annotated[SecretBox, Depends(get_secret_box)]
