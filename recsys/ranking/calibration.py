"""Probability calibration fitted on the validation split: isotonic regression or Platt scaling.

Both are stored as plain numbers (JSON) and applied with numpy, so serving needs no scikit-learn object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Method = Literal["isotonic", "platt", "none"]
_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibrator:
    method: Method = "none"
    x: tuple[float, ...] = field(default=())  # isotonic: thresholds of the raw score
    y: tuple[float, ...] = field(default=())  # isotonic: calibrated probability at each threshold
    a: float = 1.0  # platt: sigmoid(a * logit(raw) + b)
    b: float = 0.0

    @classmethod
    def fit(cls, raw: np.ndarray, labels: np.ndarray, method: Method) -> "Calibrator":
        raw = np.asarray(raw, float)
        labels = np.asarray(labels, float)
        if method == "none" or len(raw) == 0 or labels.min() == labels.max():
            return cls("none")
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, labels)
            return cls("isotonic", x=tuple(iso.X_thresholds_.tolist()), y=tuple(iso.y_thresholds_.tolist()))
        if method == "platt":
            from sklearn.linear_model import LogisticRegression

            model = LogisticRegression(C=1e6).fit(_logit(raw).reshape(-1, 1), labels)
            return cls("platt", a=float(model.coef_[0, 0]), b=float(model.intercept_[0]))
        raise ValueError(f"calibration: unknown method {method!r}; expected isotonic, platt or none")

    def apply(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, float)
        if self.method == "isotonic":
            return np.interp(raw, self.x, self.y)
        if self.method == "platt":
            return 1.0 / (1.0 + np.exp(-(self.a * _logit(raw) + self.b)))
        return raw

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "x": list(self.x), "y": list(self.y), "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Calibrator":
        return cls(data["method"], tuple(data.get("x", ())), tuple(data.get("y", ())), data.get("a", 1.0),
                   data.get("b", 0.0))
