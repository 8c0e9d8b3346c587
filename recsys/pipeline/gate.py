"""The quality gate: a new model passes only if it clears absolute thresholds, beats popularity, and does not
fall more than a configured share below the champion.

Input is the evaluation report (recsys.evaluation `report.json`); the decision is a plain record that the
state machine's Choice state branches on (`passed`) and that the notification quotes (`reasons`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from recsys.config import QualityGateConfig


class GateInputError(ValueError):
    """The evaluation report lacks a figure the gate needs; the message names it."""


@dataclass(frozen=True)
class GateMetrics:
    """The figures the gate compares, taken from one evaluation report."""

    ndcg: float
    popularity_ndcg: float
    auc: float

    @classmethod
    def from_report(cls, report: Mapping[str, Any], config: QualityGateConfig) -> "GateMetrics":
        at_k = f"@{config.k}"
        return cls(
            ndcg=_figure(report, ("ranking", "pipeline", at_k, "ndcg")),
            popularity_ndcg=_figure(report, ("ranking", "popularity", at_k, "ndcg")),
            auc=_figure(report, ("classification", "pctr", "auc")),
        )


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: tuple[str, ...]
    candidate: GateMetrics
    champion: GateMetrics | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "candidate": asdict(self.candidate),
            "champion": asdict(self.champion) if self.champion else None,
        }


def _figure(report: Mapping[str, Any], path: tuple[str, ...]) -> float:
    value: Any = report
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            raise GateInputError(f"evaluation report: missing {'.'.join(path)}")
        value = value[part]
    if not isinstance(value, (int, float)) or value != value:
        raise GateInputError(f"evaluation report: {'.'.join(path)} is {value!r}, expected a number")
    return float(value)


def decide(candidate: GateMetrics, champion: GateMetrics | None, config: QualityGateConfig) -> GateDecision:
    """Every failed condition is listed, so a rejection explains itself in full."""
    failures: list[str] = []
    if candidate.ndcg < config.min_ndcg:
        failures.append(f"NDCG@{config.k} {candidate.ndcg:.4f} < minimum {config.min_ndcg:.4f}")
    if candidate.auc < config.min_auc:
        failures.append(f"pCTR AUC {candidate.auc:.4f} < minimum {config.min_auc:.4f}")
    lift = candidate.ndcg / candidate.popularity_ndcg - 1.0 if candidate.popularity_ndcg > 0 else float("inf")
    if lift < config.min_lift_over_popularity:
        failures.append(
            f"NDCG@{config.k} lift over popularity {lift:+.1%} < required {config.min_lift_over_popularity:+.1%}"
        )
    if champion is not None and champion.ndcg > 0:
        drop = 1.0 - candidate.ndcg / champion.ndcg
        if drop > config.max_drop_vs_champion:
            failures.append(
                f"NDCG@{config.k} {drop:.1%} below the champion's {champion.ndcg:.4f} "
                f"(allowed {config.max_drop_vs_champion:.1%})"
            )
    reasons = tuple(failures) or (f"NDCG@{config.k} {candidate.ndcg:.4f}, lift over popularity {lift:+.1%}",)
    return GateDecision(not failures, reasons, candidate, champion)
