"""Two-headed rankers: pCTR and pCVR, each calibrated on the validation split, combined by a configurable objective.

Families:
- "lightgbm": gradient-boosted trees, the learning-to-rank model (Meesho), one booster per head;
- "random_forest": scikit-learn forests over Amp's features (popularity, creator popularity, topic/creator
  affinity), one forest per head.

pCVR is conditional on the click by default (trained on clicked rows only), so pCTR · pCVR is the probability
of a conversion. The objective turns the two into the ranking score:

    power:  score = pCTR^ctr_exponent · (pCVR · value)^cvr_exponent
    linear: score = ctr_weight · pCTR + cvr_weight · pCTR · pCVR · value

Isotonic calibration is a step function; to keep the order of items on the same step, the score adds 1e-6 times
the objective of the uncalibrated probabilities.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recsys.ranking.calibration import Calibrator, Method

Family = Literal["lightgbm", "random_forest"]
HEADS = ("ctr", "cvr")
TIE_BREAK = 1e-6
MIN_HEAD_ROWS = 20

DEFAULT_LIGHTGBM = {
    "objective": "binary", "learning_rate": 0.08, "num_leaves": 31, "min_data_in_leaf": 40,
    "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0, "verbose": -1,
}
DEFAULT_FOREST = {"n_estimators": 60, "max_depth": 12, "min_samples_leaf": 20, "max_features": "sqrt",
                  "max_samples": 0.3}


class RankerError(ValueError):
    """Bad ranker input or configuration; the message names the field."""


@dataclass(frozen=True)
class Objective:
    kind: Literal["power", "linear"] = "power"
    ctr_exponent: float = 1.0
    cvr_exponent: float = 1.0
    value: float = 1.0
    ctr_weight: float = 0.0
    cvr_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("power", "linear"):
            raise RankerError(f"objective.kind: expected power or linear, got {self.kind!r}")

    def combine(self, pctr: np.ndarray, pcvr: np.ndarray) -> np.ndarray:
        if self.kind == "power":
            return np.power(pctr, self.ctr_exponent) * np.power(pcvr * self.value, self.cvr_exponent)
        return self.ctr_weight * pctr + self.cvr_weight * pctr * pcvr * self.value


@dataclass(frozen=True)
class RankerConfig:
    family: Family = "lightgbm"
    features: tuple[str, ...] | None = None  # None: every column of the schema
    ctr_label: str = "label_click"
    cvr_label: str = "label_purchase"
    cvr_conditional: bool = True
    calibration: Method = "isotonic"
    objective: Objective = field(default_factory=Objective)
    num_boost_round: int = 200
    early_stopping_rounds: int = 25
    lightgbm: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_LIGHTGBM))
    forest: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_FOREST))
    seed: int = 0
    threads: int = 0  # training threads; 0: all cores

    def __post_init__(self) -> None:
        if self.family not in ("lightgbm", "random_forest"):
            raise RankerError(f"family: expected lightgbm or random_forest, got {self.family!r}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = list(self.features) if self.features is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RankerConfig":
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise RankerError(f"ranker config: unknown keys {', '.join(sorted(unknown))}")
        values = dict(data)
        if values.get("features") is not None:
            values["features"] = tuple(values["features"])
        if isinstance(values.get("objective"), Mapping):
            values["objective"] = Objective(**values["objective"])
        if "lightgbm" in values:
            values["lightgbm"] = {**DEFAULT_LIGHTGBM, **values["lightgbm"]}
        if "forest" in values:
            values["forest"] = {**DEFAULT_FOREST, **values["forest"]}
        return cls(**values)


@dataclass
class Head:
    """One probability model: a booster, a forest, or a constant (a label with one class)."""

    kind: Literal["lightgbm", "random_forest", "constant"]
    model: Any
    calibrator: Calibrator
    prior: float

    def raw(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """Uncalibrated probabilities; `threads` 1 for serving (workers are processes), 0 for all cores offline."""
        if len(x) == 0:
            return np.empty(0)
        if self.kind == "lightgbm":
            return self.model.predict(x, num_threads=threads)
        if self.kind == "random_forest":
            self.model.set_params(n_jobs=threads or -1)
            return self.model.predict_proba(x)[:, 1]
        return np.full(len(x), self.prior)

    def predict(self, x: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        raw = self.raw(x, threads)
        return raw, self.calibrator.apply(raw)


def _fit_head(config: RankerConfig, x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray) -> Head:
    prior = float(y.mean()) if len(y) else 0.0
    if len(y) < MIN_HEAD_ROWS or y.min() == y.max():
        return Head("constant", None, Calibrator("none"), prior)
    if config.family == "lightgbm":
        import lightgbm as lgb

        params = {**config.lightgbm, "seed": config.seed, "num_threads": config.threads, "deterministic": True}
        train = lgb.Dataset(x, y, free_raw_data=True)
        callbacks = []
        valid_sets = []
        if len(yv) >= MIN_HEAD_ROWS and yv.min() != yv.max():
            valid_sets = [lgb.Dataset(xv, yv, reference=train)]
            callbacks = [lgb.early_stopping(config.early_stopping_rounds, verbose=False)]
        booster = lgb.train(params, train, num_boost_round=config.num_boost_round, valid_sets=valid_sets,
                            callbacks=callbacks)
        if booster.best_iteration > 0:
            booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
        head = Head("lightgbm", booster, Calibrator("none"), prior)
    else:
        from sklearn.ensemble import RandomForestClassifier

        forest = RandomForestClassifier(**config.forest, random_state=config.seed,
                                        n_jobs=config.threads or -1).fit(x, y)
        head = Head("random_forest", forest, Calibrator("none"), prior)
    if len(yv):
        head.calibrator = Calibrator.fit(head.raw(xv, threads=config.threads), yv, config.calibration)
    return head


@dataclass(frozen=True)
class RankerOutput:
    pctr: np.ndarray
    pcvr: np.ndarray
    score: np.ndarray


class TwoHeadRanker:
    def __init__(self, config: RankerConfig, feature_names: Sequence[str], heads: dict[str, Head],
                 info: dict[str, Any]) -> None:
        self.config = config
        self.feature_names = tuple(feature_names)
        self.heads = heads
        self.info = info
        used = config.features if config.features is not None else self.feature_names
        missing = [f for f in used if f not in self.feature_names]
        if missing:
            raise RankerError(f"features: not in the schema: {', '.join(missing)}")
        self.columns = np.asarray([self.feature_names.index(f) for f in used], np.int64)

    @property
    def version(self) -> str:
        return str(self.info["version"])

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @classmethod
    def fit(cls, config: RankerConfig, feature_names: Sequence[str], x: np.ndarray, labels: Mapping[str, np.ndarray],
            x_valid: np.ndarray, labels_valid: Mapping[str, np.ndarray], *, name: str = "ranker") -> "TwoHeadRanker":
        """Fit both heads on the training rows; early stopping and calibration use the validation rows."""
        for split, data in (("train", labels), ("validation", labels_valid)):
            for label in (config.ctr_label, config.cvr_label):
                if label not in data:
                    raise RankerError(f"{split}: label column {label} is missing")
        probe = cls(config, feature_names, {}, {"version": "unfitted"})
        cols = probe.columns
        started = time.perf_counter()
        y_ctr = np.asarray(labels[config.ctr_label], float)
        y_cvr = np.asarray(labels[config.cvr_label], float)
        yv_ctr = np.asarray(labels_valid[config.ctr_label], float)
        yv_cvr = np.asarray(labels_valid[config.cvr_label], float)
        xs, xvs = x[:, cols], x_valid[:, cols]
        heads = {"ctr": _fit_head(config, xs, y_ctr, xvs, yv_ctr)}
        if config.cvr_conditional:
            mask, mask_v = y_ctr > 0, yv_ctr > 0
            heads["cvr"] = _fit_head(config, xs[mask], y_cvr[mask], xvs[mask_v], yv_cvr[mask_v])
        else:
            heads["cvr"] = _fit_head(config, xs, y_cvr, xvs, yv_cvr)
        info = {
            "name": name, "family": config.family, "trained_at": time.time(),
            "fit_seconds": round(time.perf_counter() - started, 3), "train_rows": int(len(x)),
            "validation_rows": int(len(x_valid)), "heads": {h: heads[h].kind for h in HEADS},
            "trees": {h: _tree_count(heads[h]) for h in HEADS},
            "priors": {h: heads[h].prior for h in HEADS},
        }
        ranker = cls(config, feature_names, heads, info)
        ranker.info["version"] = f"{name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{ranker._digest()}"
        return ranker

    def predict(self, x: np.ndarray, threads: int = 1) -> RankerOutput:
        """pCTR, pCVR and score (float64) of full-schema rows."""
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise RankerError(f"features: expected rows of {self.n_features} values, got shape {x.shape}")
        xs = x[:, self.columns]
        raw_ctr, pctr = self.heads["ctr"].predict(xs, threads)
        raw_cvr, pcvr = self.heads["cvr"].predict(xs, threads)
        objective = self.config.objective
        score = objective.combine(pctr, pcvr) + TIE_BREAK * objective.combine(raw_ctr, raw_cvr)
        return RankerOutput(pctr, pcvr, score)

    # Persistence: ranker.json + one file per head (LightGBM text model, or a pickled forest whose SHA-256 is
    # recorded in ranker.json and checked before unpickling).
    def _head_bytes(self, head: Head) -> bytes:
        if head.kind == "lightgbm":
            return head.model.model_to_string().encode()
        if head.kind == "random_forest":
            return pickle.dumps(head.model, protocol=5)
        return b""

    def _digest(self) -> str:
        h = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True).encode())
        h.update(",".join(self.feature_names).encode())
        for name in HEADS:
            head = self.heads[name]
            h.update(self._head_bytes(head))
            h.update(json.dumps(head.calibrator.to_dict()).encode())
        return h.hexdigest()[:10]

    def save(self, directory: Path | str) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        heads = {}
        for name in HEADS:
            head = self.heads[name]
            entry: dict[str, Any] = {"kind": head.kind, "prior": head.prior, "calibrator": head.calibrator.to_dict()}
            payload = self._head_bytes(head)
            if payload:
                file_name = f"{name}.lgb.txt" if head.kind == "lightgbm" else f"{name}.forest.pkl"
                (directory / file_name).write_bytes(payload)
                entry.update(file=file_name, sha256=hashlib.sha256(payload).hexdigest())
            heads[name] = entry
        document = {"config": self.config.to_dict(), "feature_names": list(self.feature_names), "heads": heads,
                    "info": self.info}
        path = directory / "ranker.json"
        path.write_text(json.dumps(document, indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, directory: Path | str) -> "TwoHeadRanker":
        directory = Path(directory)
        document = json.loads((directory / "ranker.json").read_text())
        heads: dict[str, Head] = {}
        for name in HEADS:
            entry = document["heads"][name]
            model = None
            if entry["kind"] != "constant":
                payload = (directory / entry["file"]).read_bytes()
                if hashlib.sha256(payload).hexdigest() != entry["sha256"]:
                    raise RankerError(f"{directory / entry['file']}: checksum does not match ranker.json")
                if entry["kind"] == "lightgbm":
                    import lightgbm as lgb

                    model = lgb.Booster(model_str=payload.decode())
                else:
                    model = pickle.loads(payload)  # noqa: S301 - our own artifact, checksum verified above
            heads[name] = Head(entry["kind"], model, Calibrator.from_dict(entry["calibrator"]), entry["prior"])
        return cls(RankerConfig.from_dict(document["config"]), document["feature_names"], heads, document["info"])

    def with_objective(self, objective: Objective) -> "TwoHeadRanker":
        """The same heads ranked by another objective (e.g. an A/B variant's business weights)."""
        return TwoHeadRanker(replace(self.config, objective=objective), self.feature_names, self.heads, dict(self.info))


def _tree_count(head: Head) -> int:
    if head.kind == "lightgbm":
        return int(head.model.num_trees())
    if head.kind == "random_forest":
        return len(head.model.estimators_)
    return 0
