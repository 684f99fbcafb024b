"""The data converter every AWFDRS client uses: Pydantic JSON with process-wide type adapters.

The SDK builds a fresh payload converter for every workflow run, so the stock converter's
per-instance adapter cache starts empty each time and rebuilds a Pydantic schema for every
payload type of every incident; profiling the worker put that at about 14% of its CPU.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import TypeAdapter
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)


@functools.lru_cache(maxsize=512)
def _type_adapter(type_hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(type_hint)


class SharedAdapterJSONConverter(PydanticJSONPlainPayloadConverter):
    """Pydantic JSON whose type adapters outlive the converter instance."""

    def __init__(self) -> None:
        super().__init__(max_cached_type_adapters=0)
        self._type_adapter = _type_adapter

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._type_adapter = _type_adapter


class AwfdrsPayloadConverter(CompositePayloadConverter):
    """The SDK's default encodings with JSON handled by `SharedAdapterJSONConverter`."""

    def __init__(self) -> None:
        json_converter = SharedAdapterJSONConverter()
        super().__init__(
            *(
                json_converter if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


DATA_CONVERTER = DataConverter(payload_converter_class=AwfdrsPayloadConverter)
