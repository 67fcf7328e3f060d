"""What a whole-book run asks for, resolved against one context."""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import FieldProblem, InvalidRequest
from app.scoring.context import ScoringContext
from app.scoring.pipeline import PARTS, Options

MAX_TOP_N = 50  # as the API's top_n


@dataclass(frozen=True, slots=True)
class BookOptions:
    """Parts to compute, recommendations per customer (None: the policy's default), churn
    reasons, and whether recommendations are one nested list column or flat columns."""

    parts: tuple[str, ...] = PARTS
    top_n: int | None = None
    explain: bool = False
    nested: bool = False

    def __post_init__(self) -> None:
        problems = [FieldProblem("parts", f"{p!r} is not one of {', '.join(PARTS)}")
                    for p in self.parts if p not in PARTS]
        if not self.parts:
            problems.append(FieldProblem("parts", "name at least one part"))
        if self.top_n is not None and not 1 <= self.top_n <= MAX_TOP_N:
            problems.append(FieldProblem("top_n", f"must be 1 to {MAX_TOP_N}"))
        if problems:
            raise InvalidRequest("the options are invalid", problems)
        # A fixed order, whatever the caller's: the output columns follow it.
        object.__setattr__(self, "parts", tuple(p for p in PARTS if p in self.parts))

    @classmethod
    def parse_parts(cls, text: str | None) -> tuple[str, ...]:
        """`tier,churn` → ("tier", "churn"); None or empty → every part."""
        if not text:
            return PARTS
        return tuple(p.strip() for p in text.split(",") if p.strip())

    def top_n_for(self, ctx: ScoringContext) -> int:
        """Recommendations per customer: the option, else the live policy's default."""
        return self.top_n or ctx.policy.default_top_n

    def scoring(self, ctx: ScoringContext) -> Options:
        """The pipeline's options (as POST /v1/score/batch builds them, suppressed actions
        aside: they change no recommendation and a book does not list them)."""
        # No decision ids: a book's columns do not hold them (and a process of its own has
        # not the service's key to sign them with).
        return Options(parts=frozenset(self.parts), top_n=self.top_n_for(ctx),
                       explain=self.explain, include_suppressed=False, decision_ids=False)

    def as_dict(self, ctx: ScoringContext) -> dict[str, object]:
        return {"parts": list(self.parts), "top_n": self.top_n_for(ctx),
                "explain": self.explain, "nested": self.nested}
