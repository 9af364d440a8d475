"""One-click re-runs for an explanation whose diagnostic is poor, read from the diagnostic's own data
(Diagnostic.remedies in methods.py): a page offers them without knowing which method it shows."""

from __future__ import annotations

from dataclasses import dataclass

from explainers.explanation import Explanation
from explainers.methods import get_method


@dataclass(frozen=True)
class Remedy:
    method: str
    param: str
    value: float | int
    diagnostic: str  # the poor diagnostic's title

    @property
    def label(self) -> str:
        return f"Re-run with {self.param.replace('_', ' ')} {self.value:g}"


def remedies(exp: Explanation) -> list[Remedy]:
    """The re-runs each poor diagnostic of `exp` suggests, within the parameter's bounds, each changing a
    value the explanation actually used (none when the method has no such parameter)."""
    known = {p.name: p for p in get_method(exp.method).params}
    found: list[Remedy] = []
    for diagnostic in exp.diagnostics:
        if diagnostic["ok"]:
            continue
        for param, op, amount in diagnostic.get("remedies", ()):
            if param not in known or exp.params.get(param) is None:
                continue
            spec, current = known[param], exp.params[param]
            value = current * amount if op == "times" else amount
            value = min(max(value, spec.low if spec.low is not None else value), spec.high or value)
            value = int(round(value)) if spec.kind == "int" else float(value)
            if value != current and all(r.param != param or r.value != value for r in found):
                found.append(Remedy(exp.method, param, value, diagnostic["title"]))
    return found
