"""The JSON response class every route uses: orjson bytes, no second validation pass."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSONBytes(Response):
    """Serialises plain dicts with orjson (fast; NaN never appears, it is rejected upstream)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
