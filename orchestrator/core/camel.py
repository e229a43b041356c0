"""The API models' base (pure): camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from typing import Any

from pydantic import AliasGenerator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, validation on assignment."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(alias=to_camel),
        populate_by_name=True,
        validate_assignment=True,
    )

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON-ready dict, by alias, without unset optional fields that are None."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
