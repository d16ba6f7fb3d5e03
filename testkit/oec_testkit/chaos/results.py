"""What a chaos scenario reports: :class:`Result` rows and their Markdown :func:`table`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Result", "table"]


@dataclass
class Result:
    """One row of the chaos table.

    ``fault``: what was done; ``trials``: how many times; ``checked``: what was verified after
    each trial; ``violations``: one line per broken promise (empty = pass); ``notes``: measured
    numbers (e.g. API calls during an outage and the bound asserted).
    """

    fault: str
    trials: int
    checked: str
    violations: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.violations and self.trials > 0

    def summary(self) -> str:
        return "pass (0 violations)" if self.passed else f"FAIL ({len(self.violations)} violations)"


def table(results: Sequence[Result]) -> str:
    """Markdown table of ``results`` (fault, trials, checked, result)."""
    lines = ["| Fault | Trials | Checked | Result |", "|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.fault} | {r.trials} | {r.checked} | {r.summary()} |")
    return "\n".join(lines)
