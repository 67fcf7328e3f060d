"""Business policy: AUM tier thresholds, churn bands, challenger routing. Data, not code."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierThreshold(_Strict):
    tier: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    min_aum: float = Field(ge=0)


class ChurnBand(_Strict):
    band: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    min_probability: float = Field(ge=0, le=1)


class Challenger(_Strict):
    """How the `challenger` alias is used: not at all, in shadow, or for a share of customers."""

    mode: Literal["off", "shadow", "split"] = "off"
    share: float = Field(default=0.0, ge=0, le=1, description="Share of customers in split mode.")


class ControlGroup(_Strict):
    """A share of customers held out of product offers, so their uplift can be measured."""

    share: float = Field(default=0.0, ge=0, le=0.5, description="Share of customers held "
                         "out of product offers (0 = no control group).")
    salt: str = Field(default="", max_length=64, description="Mixed into the hash of the "
                      "customer id: a new salt draws a new control group.")

    def holds_out(self, customer_id: str) -> bool:
        """Whether the customer is in the control group: the first 8 bytes of
        sha256(salt + customer id), read as a fraction of 2^64, below `share`. The same on
        every replica and after every restart."""
        if self.share <= 0.0:
            return False
        digest = hashlib.sha256((self.salt + customer_id).encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64 < self.share


class Policy(_Strict):
    """Tier thresholds (ascending), churn bands (ascending) and serving defaults."""

    tiers: tuple[TierThreshold, ...]
    churn_bands: tuple[ChurnBand, ...]
    default_top_n: int = Field(default=3, ge=1, le=50)
    challenger: Challenger = Challenger()
    control_group: ControlGroup = ControlGroup()

    @model_validator(mode="after")
    def _ordered(self) -> Policy:
        aums = [t.min_aum for t in self.tiers]
        if not aums or aums[0] != 0 or aums != sorted(aums) or len(set(aums)) != len(aums):
            raise ValueError("tiers must start at min_aum 0 and rise strictly")
        probs = [b.min_probability for b in self.churn_bands]
        if not probs or probs[0] != 0 or probs != sorted(probs) or len(set(probs)) != len(probs):
            raise ValueError("churn_bands must start at min_probability 0 and rise strictly")
        return self

    @property
    def tier_names(self) -> tuple[str, ...]:
        return tuple(t.tier for t in self.tiers)
