"""What one customer feature is: its name, type, unit, allowed values and meaning."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FeatureKind = Literal["number", "integer", "boolean", "category"]


class FeatureSpec(BaseModel):
    """One named customer feature, as a manifest or the default contract declares it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    kind: FeatureKind
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()
    nullable: bool = True
    description: str = ""
    example: Any = None

    @model_validator(mode="after")
    def _consistent(self) -> FeatureSpec:
        if self.kind == "category" and not self.categories:
            raise ValueError(f"category feature {self.name} needs its categories")
        if self.kind != "category" and self.categories:
            raise ValueError(f"only category features list categories ({self.name})")
        if (
            self.minimum is not None
            and self.maximum is not None
            and self.minimum > self.maximum
        ):
            raise ValueError(f"{self.name}: minimum above maximum")
        return self

    def check(self, value: Any) -> str | None:
        """The problem with `value` for this feature, or None when it is acceptable."""
        if value is None:
            return None if self.nullable else "is required and may not be null"
        if self.kind == "boolean":
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind == "category":
            if not isinstance(value, str):
                return "must be a string, one of " + ", ".join(self.categories)
            if value not in self.categories:
                return f"'{value}' is not one of " + ", ".join(self.categories)
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a{'n integer' if self.kind == 'integer' else ' number'}"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number (NaN and Infinity are not allowed)"
        # (an int is whole however large; float() of a huge one would overflow)
        if self.kind == "integer" and isinstance(value, float) and not value.is_integer():
            return "must be an integer"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {_fmt(self.minimum)}" + self._range_hint()
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {_fmt(self.maximum)}" + self._range_hint()
        return None

    def _range_hint(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f" (allowed {_fmt(self.minimum)} to {_fmt(self.maximum)}{self._unit()})"
        return ""

    def _unit(self) -> str:
        return f" {self.unit}" if self.unit else ""


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)
