"""Feature drift (training-serving skew) and prediction drift (prior shift) against a training baseline.

1. At training time, `build_baseline(rows)` summarises the training rows: per
   feature the baseline's quantile bin edges and bin shares (categories and their
   shares for categorical features), the missing share, summary statistics and a
   uniform random sample for the KS test; the same for the model's predictions,
   plus the positive rate of the label. `Baseline.save(uri)` stores it as JSON
   next to the model artifact.
2. Several times a day, `run_drift_job` reads the rows the endpoint scored
   (JSON lines: {"timestamp": ..., "features": {...}, "prediction": ...}),
   streams them through a `DriftAccumulator` (exact bin counts, a reservoir
   sample per feature, so memory does not grow with the log), and produces a
   `DriftReport`: PSI for every feature, KS for the numeric ones, the same for
   the predictions and the shift of the mean prediction from the training
   positive rate. It publishes the metrics and writes a JSON and an HTML report.

Statuses: "ok", "warn", "alarm" by the thresholds in `DriftMonitorConfig`, or
"insufficient" below `min_samples` rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from recsys.config import DriftMonitorConfig
from recsys.monitoring import html, storage
from recsys.monitoring.metrics import Metric, MetricsPublisher
from recsys.monitoring.stats import bin_counts, ks_2samp, psi, quantile_edges

NUMERIC = "numeric"
CATEGORICAL = "categorical"
OK, WARN, ALARM, INSUFFICIENT = "ok", "warn", "alarm", "insufficient"
_SEVERITY = {INSUFFICIENT: -1, OK: 0, WARN: 1, ALARM: 2}
BASELINE_FILE = "drift-baseline.json"
PREDICTION = "prediction"
LABEL = "label"
BASELINE_FORMAT = 1
_MAX_ERRORS = 20


def _clean(value: float) -> float | None:
    """NaN is not JSON: statistics of an empty column are stored as null."""
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class FeatureBaseline:
    """One column of the baseline.

    numeric: `bins` are the inner edges e0 < e1 < ... (bins (-inf, e0], (e0, e1], ..., (e_last, inf));
    categorical: `bins` are the kept categories, followed by one bin for every other value.
    `shares` has one entry per bin and a last one for missing values.
    """

    kind: str
    bins: list
    shares: list[float]
    count: int
    summary: dict[str, float | None] = field(default_factory=dict)
    sample: list[float] = field(default_factory=list)

    @property
    def missing_share(self) -> float:
        return self.shares[-1]

    def served_counts(self, values: np.ndarray) -> np.ndarray:
        """Counts of served values in this baseline's bins (missing last), values as `prepare` returns them."""
        if self.kind == NUMERIC:
            present = values[np.isfinite(values)]
            counts = bin_counts(present, np.asarray(self.bins, dtype=float))
            return np.append(counts, values.size - present.size)
        return _category_counts(self.bins, values)

    def prepare(self, values: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, int]:
        """Served values in this feature's form, and how many were of the wrong type (counted as missing)."""
        return _as_numeric(values) if self.kind == NUMERIC else _as_categorical(values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str) -> "FeatureBaseline":
        try:
            kind = data["kind"]
            if kind not in (NUMERIC, CATEGORICAL):
                raise ValueError(f"kind {kind!r} is not numeric or categorical")
            bins, shares = list(data["bins"]), [float(s) for s in data["shares"]]
            # numeric: k edges make k + 1 bins; categorical: k categories and "other"; then missing.
            if len(shares) != len(bins) + 2:
                raise ValueError(f"{len(shares)} shares for {len(bins)} bins, expected {len(bins) + 2}")
            return cls(kind, bins, shares, int(data["count"]), dict(data.get("summary", {})),
                       [float(v) for v in data.get("sample", [])])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"baseline feature {name!r}: {exc}") from exc


@dataclass(frozen=True)
class Baseline:
    features: dict[str, FeatureBaseline]
    prediction: FeatureBaseline | None
    positive_rate: float | None
    rows: int
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": BASELINE_FORMAT,
            "created_at": self.created_at,
            "rows": self.rows,
            "positive_rate": self.positive_rate,
            "features": {name: f.to_dict() for name, f in self.features.items()},
            "prediction": self.prediction.to_dict() if self.prediction else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Baseline":
        if not isinstance(data, Mapping) or data.get("format") != BASELINE_FORMAT:
            raise ValueError(f"baseline: format must be {BASELINE_FORMAT}")
        if not isinstance(data.get("features"), Mapping) or not data["features"]:
            raise ValueError("baseline: features must be a non-empty object")
        prediction = data.get("prediction")
        return cls(
            features={name: FeatureBaseline.from_dict(f, name) for name, f in data["features"].items()},
            prediction=FeatureBaseline.from_dict(prediction, PREDICTION) if prediction else None,
            positive_rate=None if data.get("positive_rate") is None else float(data["positive_rate"]),
            rows=int(data.get("rows", 0)),
            created_at=str(data.get("created_at", "")),
        )

    def save(self, uri: str) -> None:
        storage.write_json(uri, self.to_dict())

    @classmethod
    def load(cls, uri: str) -> "Baseline":
        return cls.from_dict(storage.read_json(uri))


def _as_numeric(values: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, int]:
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        out = values.astype(float)
        out[~np.isfinite(out)] = np.nan
        return out, 0
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    out = np.full(len(items), np.nan)
    invalid = 0
    for i, value in enumerate(items):
        if value is None:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[i] = value if math.isfinite(value) else np.nan
        else:
            invalid += 1
    return out, invalid


def _as_categorical(values: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, int]:
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    out = np.empty(len(items), dtype=object)
    invalid = 0
    for i, value in enumerate(items):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out[i] = None
        elif isinstance(value, (dict, list)):
            out[i] = None
            invalid += 1
        else:
            out[i] = str(value).lower() if isinstance(value, bool) else str(value)
    return out, invalid


def _category_counts(categories: Sequence[str], values: np.ndarray) -> np.ndarray:
    """Counts per category, then of every other value, then of missing values."""
    index = {category: i for i, category in enumerate(categories)}
    counts = np.zeros(len(categories) + 2, dtype=np.int64)
    for value in values:
        counts[-1 if value is None else index.get(value, len(categories))] += 1
    return counts


def _column(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """A column as an array; lists become object arrays so that mixed types are not coerced to strings."""
    return values if isinstance(values, np.ndarray) else np.array(list(values), dtype=object)


def _is_numeric_column(values: np.ndarray) -> bool:
    if values.dtype.kind in "iuf":
        return True
    if values.dtype.kind != "O":
        return False
    present = [v for v in values.tolist() if v is not None]
    return bool(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)


class Reservoir:
    """Uniform random sample of fixed capacity over a stream (Algorithm R), fed in chunks."""

    def __init__(self, capacity: int, rng: np.random.Generator) -> None:
        self.capacity = capacity
        self.rng = rng
        self.values = np.empty(0)
        self.seen = 0

    def extend(self, values: np.ndarray) -> None:
        fill = min(self.capacity - self.values.size, values.size)
        if fill > 0:
            self.values = np.concatenate([self.values, values[:fill]])
        rest = values[fill:]
        if rest.size:
            # Item number t (0-based in the stream) replaces slot j ~ U{0..t} when j < capacity.
            positions = self.seen + fill + np.arange(rest.size)
            slots = self.rng.integers(0, positions + 1)
            keep = slots < self.capacity
            slots, chosen = slots[keep], rest[keep]
            # Of several items drawn for one slot, the last in stream order is the one that stays.
            unique_slots, last = np.unique(slots[::-1], return_index=True)
            self.values[unique_slots] = chosen[::-1][last]
        self.seen += values.size


def _summary(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"mean": None, "std": None, "min": None, "p01": None, "p50": None, "p99": None, "max": None}
    p01, p50, p99 = np.quantile(values, [0.01, 0.5, 0.99])
    return {name: _clean(v) for name, v in (("mean", values.mean()), ("std", values.std()), ("min", values.min()),
                                             ("p01", p01), ("p50", p50), ("p99", p99), ("max", values.max()))}


def _numeric_baseline(values: np.ndarray, bins: int, sample_size: int, rng: np.random.Generator) -> FeatureBaseline:
    present = values[np.isfinite(values)]
    edges = quantile_edges(present, bins)
    counts = np.append(bin_counts(present, edges), values.size - present.size)
    reservoir = Reservoir(sample_size, rng)
    reservoir.extend(present)
    return FeatureBaseline(NUMERIC, [float(e) for e in edges], (counts / max(values.size, 1)).tolist(),
                           int(values.size), _summary(present), reservoir.values.tolist())


def _categorical_baseline(values: np.ndarray, max_categories: int) -> FeatureBaseline:
    present = [v for v in values.tolist() if v is not None]
    categories, frequencies = np.unique(np.asarray(present, dtype=str), return_counts=True) if present else ([], [])
    order = sorted(zip(categories, frequencies), key=lambda cf: (-cf[1], cf[0]))[:max_categories]
    kept = [str(c) for c, _ in order]
    counts = _category_counts(kept, values)
    summary = {"distinct": float(len(categories)), "kept": float(len(kept))}
    return FeatureBaseline(CATEGORICAL, kept, (counts / max(len(values), 1)).tolist(), len(values), summary)


def build_baseline(
    rows: Mapping[str, Sequence[Any] | np.ndarray],
    *,
    prediction_key: str = PREDICTION,
    label_key: str = LABEL,
    categorical: Iterable[str] = (),
    bins: int = 10,
    max_categories: int = 50,
    sample_size: int = 5000,
    seed: int = 0,
) -> Baseline:
    """The drift baseline of training rows given as columns: name -> values, one value per row.

    Numeric columns (ints, floats, None/NaN for missing) get quantile bins and a KS
    sample; strings, booleans and the names in `categorical` get category shares.
    `prediction_key` (the model's scores on these rows) and `label_key` (0/1) are
    optional and not features.
    """
    if not rows:
        raise ValueError("build_baseline: no columns")
    lengths = {name: len(values) for name, values in rows.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"build_baseline: columns differ in length: {lengths}")
    if next(iter(lengths.values())) == 0:
        raise ValueError("build_baseline: no rows")
    if bins < 2:
        raise ValueError("build_baseline: bins must be >= 2")
    rng = np.random.default_rng(seed)
    forced = set(categorical)
    features: dict[str, FeatureBaseline] = {}
    for name in sorted(rows):
        if name in (prediction_key, label_key):
            continue
        values = _column(rows[name])
        if name not in forced and _is_numeric_column(values):
            features[name] = _numeric_baseline(_as_numeric(values)[0], bins, sample_size, rng)
        else:
            features[name] = _categorical_baseline(_as_categorical(values)[0], max_categories)
    if not features:
        raise ValueError("build_baseline: no feature columns besides the prediction and the label")
    prediction = None
    if prediction_key in rows:
        scores, invalid = _as_numeric(rows[prediction_key])
        if invalid:
            raise ValueError(f"build_baseline: {prediction_key}: {invalid} non-numeric values")
        prediction = _numeric_baseline(scores, bins, sample_size, rng)
    positive_rate = None
    if label_key in rows:
        raw_labels = rows[label_key]
        if isinstance(raw_labels, np.ndarray) and raw_labels.dtype.kind == "b":
            raw_labels = raw_labels.astype(int)
        labels, invalid = _as_numeric(raw_labels)
        present = labels[np.isfinite(labels)]
        if invalid or not np.isin(present, (0.0, 1.0)).all():
            raise ValueError(f"build_baseline: {label_key}: labels must be 0 or 1")
        positive_rate = float(present.mean()) if present.size else None
    return Baseline(features, prediction, positive_rate, next(iter(lengths.values())), _now().isoformat())


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str
    status: str
    psi: float
    ks_statistic: float | None
    ks_p_value: float | None
    rows: int
    invalid_values: int
    baseline_missing_share: float
    served_missing_share: float
    baseline_mean: float | None
    served_mean: float | None
    reasons: list[str]


@dataclass(frozen=True)
class PredictionDrift(FeatureDrift):
    baseline_positive_rate: float | None = None
    prior_shift: float | None = None


@dataclass(frozen=True)
class DriftReport:
    generated_at: str
    rows: int
    rejected_rows: int
    features: list[FeatureDrift]
    prediction: PredictionDrift | None
    unknown_features: list[str]
    errors: list[str]
    thresholds: dict[str, Any]

    @property
    def drifted_features(self) -> list[str]:
        """Features in alarm state (the prediction has its own metrics)."""
        return [f.feature for f in self.features if f.status == ALARM]

    def feature(self, name: str) -> FeatureDrift:
        for drift in self.features:
            if drift.feature == name:
                return drift
        raise KeyError(name)

    def metrics(self) -> list[Metric]:
        out = [Metric("DriftRowsCompared", self.rows), Metric("DriftedFeatures", len(self.drifted_features))]
        for f in self.features:
            if f.status == INSUFFICIENT:
                continue
            out.append(Metric("FeatureDriftPSI", f.psi, {"Feature": f.feature}))
            if f.ks_statistic is not None:
                out.append(Metric("FeatureDriftKS", f.ks_statistic, {"Feature": f.feature}))
        p = self.prediction
        if p is not None and p.status != INSUFFICIENT:
            out.append(Metric("PredictionDriftPSI", p.psi))
            if p.ks_statistic is not None:
                out.append(Metric("PredictionDriftKS", p.ks_statistic))
            if p.prior_shift is not None:
                out.append(Metric("PredictionPriorShift", p.prior_shift))
        return out

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self) | {"drifted_features": self.drifted_features})

    def to_html(self) -> str:
        headers = ["feature", "kind", "status", "PSI", "KS D", "KS p", "rows", "missing base", "missing served",
                   "mean base", "mean served", "why"]
        rows = [[f.feature, f.kind, f.status, f.psi, f.ks_statistic, f.ks_p_value, f.rows, f.baseline_missing_share,
                 f.served_missing_share, f.baseline_mean, f.served_mean, "; ".join(f.reasons)]
                for f in sorted(self.features, key=lambda f: (-_SEVERITY[f.status], -f.psi))]
        sections = [
            html.paragraph(f"Generated {self.generated_at}: {self.rows} served rows compared, {self.rejected_rows} "
                           f"rejected; {len(self.drifted_features)} features in alarm."),
            html.heading("Features"), html.table(headers, rows, status_column=2),
        ]
        if self.prediction is not None:
            p = self.prediction
            sections += [html.heading("Predictions (prior shift)"), html.table(
                ["status", "PSI", "KS D", "KS p", "mean base", "mean served", "positive rate", "prior shift", "why"],
                [[p.status, p.psi, p.ks_statistic, p.ks_p_value, p.baseline_mean, p.served_mean,
                  p.baseline_positive_rate, p.prior_shift, "; ".join(p.reasons)]], status_column=0)]
        if self.unknown_features:
            sections.append(html.paragraph("Served features not in the baseline: " + ", ".join(self.unknown_features)))
        if self.errors:
            sections += [html.heading("Rejected rows (first)"), html.table(["error"], [[e] for e in self.errors])]
        sections.append(html.paragraph("Thresholds: " + json.dumps(self.thresholds, sort_keys=True)))
        return html.page("Drift report", sections)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return _clean(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


class _FeatureState:
    def __init__(self, baseline: FeatureBaseline, sample_size: int, rng: np.random.Generator) -> None:
        self.baseline = baseline
        self.counts = np.zeros(len(baseline.shares), dtype=np.int64)
        self.reservoir = Reservoir(sample_size, rng) if baseline.kind == NUMERIC else None
        self.total = 0.0
        self.invalid = 0

    def add(self, values: Sequence[Any] | np.ndarray) -> None:
        prepared, invalid = self.baseline.prepare(values)
        self.invalid += invalid
        self.counts += self.baseline.served_counts(prepared)
        if self.reservoir is not None:
            present = prepared[np.isfinite(prepared)]
            self.reservoir.extend(present)
            self.total += float(present.sum())

    def add_missing(self, rows: int) -> None:
        self.counts[-1] += rows

    def judge(self, name: str, t: DriftMonitorConfig) -> FeatureDrift:
        rows = int(self.counts.sum())
        present = rows - int(self.counts[-1])
        value_psi = psi(self.baseline.shares, self.counts) if rows else 0.0
        ks = None
        if self.reservoir is not None and self.reservoir.values.size and self.baseline.sample:
            ks = ks_2samp(np.asarray(self.baseline.sample), self.reservoir.values)
        status, reasons = _status(rows, value_psi, ks, t)
        return FeatureDrift(
            feature=name, kind=self.baseline.kind, status=status, psi=value_psi,
            ks_statistic=ks.statistic if ks else None, ks_p_value=ks.p_value if ks else None,
            rows=rows, invalid_values=self.invalid, baseline_missing_share=self.baseline.missing_share,
            served_missing_share=float(self.counts[-1] / rows) if rows else 0.0,
            baseline_mean=self.baseline.summary.get("mean") if self.baseline.kind == NUMERIC else None,
            served_mean=(self.total / present if present else None) if self.reservoir is not None else None,
            reasons=reasons,
        )


def _status(rows: int, value_psi: float, ks, t: DriftMonitorConfig) -> tuple[str, list[str]]:
    if rows < t.min_samples:
        return INSUFFICIENT, [f"{rows} rows < min_samples {t.min_samples}"]
    status, reasons = OK, []
    if value_psi >= t.psi_warn:
        level = ALARM if value_psi >= t.psi_alarm else WARN
        status = _worst(status, level)
        reasons.append(f"PSI {value_psi:.3f} >= {t.psi_alarm if level == ALARM else t.psi_warn}")
    if ks is not None and ks.p_value < t.ks_p_value and ks.statistic >= t.ks_warn_statistic:
        level = ALARM if ks.statistic >= t.ks_alarm_statistic else WARN
        status = _worst(status, level)
        reasons.append(f"KS D {ks.statistic:.3f} (p={ks.p_value:.2g})")
    return status, reasons


def _worst(a: str, b: str) -> str:
    return a if _SEVERITY[a] >= _SEVERITY[b] else b


class DriftAccumulator:
    """Served rows, fed in column chunks, compared against a baseline. Memory is bounded by the sample size."""

    def __init__(self, baseline: Baseline, *, sample_size: int | None = None, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        size = sample_size or max([len(f.sample) for f in baseline.features.values()] + [1])
        self.baseline = baseline
        self.states = {name: _FeatureState(f, size, rng) for name, f in baseline.features.items()}
        self.prediction = _FeatureState(baseline.prediction, size, rng) if baseline.prediction else None
        self.rows = 0
        self.rejected = 0
        self.errors: list[str] = []
        self.unknown: set[str] = set()

    def add(self, columns: Mapping[str, Sequence[Any] | np.ndarray], prediction_key: str = PREDICTION) -> None:
        """One chunk of served rows as columns (name -> values); absent features count as missing."""
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"served rows: columns differ in length: { {k: len(v) for k, v in columns.items()} }")
        rows = lengths.pop() if lengths else 0
        for name, state in self.states.items():
            if name in columns:
                state.add(columns[name])
            else:
                state.add_missing(rows)
        if self.prediction is not None:
            if prediction_key in columns:
                self.prediction.add(columns[prediction_key])
            else:
                self.prediction.add_missing(rows)
        self.unknown |= set(columns) - set(self.states) - {prediction_key}
        self.rows += rows

    def reject(self, error: str) -> None:
        self.rejected += 1
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append(error)

    def report(self, thresholds: DriftMonitorConfig, now: datetime | None = None) -> DriftReport:
        features = [state.judge(name, thresholds) for name, state in sorted(self.states.items())]
        return DriftReport(
            generated_at=(now or _now()).isoformat(),
            rows=self.rows,
            rejected_rows=self.rejected,
            features=features,
            prediction=self._prediction_drift(thresholds),
            unknown_features=sorted(self.unknown),
            errors=list(self.errors),
            thresholds=asdict(thresholds),
        )

    def _prediction_drift(self, t: DriftMonitorConfig) -> PredictionDrift | None:
        if self.prediction is None:
            return None
        drift = self.prediction.judge(PREDICTION, t)
        reference = self.baseline.positive_rate
        if reference is None:
            reference = drift.baseline_mean
        shift = None
        status, reasons = drift.status, list(drift.reasons)
        if reference and drift.served_mean is not None:
            shift = (drift.served_mean - reference) / reference
            if status != INSUFFICIENT and abs(shift) >= t.prior_shift_warn:
                level = ALARM if abs(shift) >= t.prior_shift_alarm else WARN
                status = _worst(status, level)
                reasons.append(f"mean prediction {drift.served_mean:.4g} vs reference {reference:.4g} ({shift:+.1%})")
        fields = asdict(drift) | {"status": status, "reasons": reasons}
        return PredictionDrift(**fields, baseline_positive_rate=self.baseline.positive_rate, prior_shift=shift)


def compare(
    baseline: Baseline,
    served_rows: Mapping[str, Sequence[Any] | np.ndarray],
    thresholds: DriftMonitorConfig | None = None,
    *,
    prediction_key: str = PREDICTION,
    seed: int = 0,
) -> DriftReport:
    """Drift of served rows (columns: name -> values) against the baseline."""
    accumulator = DriftAccumulator(baseline, seed=seed)
    accumulator.add(served_rows, prediction_key)
    return accumulator.report(thresholds or DriftMonitorConfig())


# Served rows are read and fed to the accumulator in chunks of this many rows.
CHUNK_ROWS = 5000


def parse_served_row(record: Any, prediction_key: str = PREDICTION) -> tuple[dict[str, Any], float | None]:
    """A logged scored row {"timestamp": s, "features": {...}, "prediction": x}: its columns and time.

    Raises ValueError naming the bad field.
    """
    if not isinstance(record, dict):
        raise ValueError("row: must be a JSON object")
    features = record.get("features")
    if not isinstance(features, dict):
        raise ValueError("features: required object of feature values")
    timestamp = record.get("timestamp")
    if timestamp is not None and (isinstance(timestamp, bool) or not isinstance(timestamp, (int, float))):
        raise ValueError("timestamp: must be unix seconds")
    columns = dict(features)
    prediction = record.get(prediction_key)
    if prediction is not None:
        if isinstance(prediction, bool) or not isinstance(prediction, (int, float)):
            raise ValueError(f"{prediction_key}: must be a number")
        columns[prediction_key] = prediction
    return columns, None if timestamp is None else float(timestamp)


def _chunks(rows: Iterator[dict[str, Any]], size: int) -> Iterator[dict[str, list[Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield _columns(batch)
            batch = []
    if batch:
        yield _columns(batch)


def _columns(batch: list[dict[str, Any]]) -> dict[str, list[Any]]:
    names = set().union(*batch)
    return {name: [row.get(name) for row in batch] for name in names}


def run_drift_job(
    baseline_uri: str,
    served_rows_source: str,
    thresholds: DriftMonitorConfig,
    publisher: MetricsPublisher,
    *,
    report_uri: str | None = None,
    now: datetime | None = None,
    prediction_key: str = PREDICTION,
) -> DriftReport:
    """The scheduled drift check: baseline JSON + served JSON lines -> metrics and a JSON/HTML report.

    Rows logged more than `thresholds.window_hours` before `now` are skipped (rows
    without a timestamp are kept). Unparseable rows are counted, and the first ones
    listed with their file and line, in the report.
    """
    now = now or _now()
    since = now.timestamp() - thresholds.window_hours * 3600 if thresholds.window_hours > 0 else None
    accumulator = DriftAccumulator(Baseline.load(baseline_uri), sample_size=thresholds.baseline_sample_size)

    def rows() -> Iterator[dict[str, Any]]:
        for line in storage.iter_lines(served_rows_source):
            try:
                columns, timestamp = parse_served_row(json.loads(line.text), prediction_key)
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                accumulator.reject(f"{line.where}: {exc}")
                continue
            if since is None or timestamp is None or timestamp >= since:
                yield columns

    for chunk in _chunks(rows(), CHUNK_ROWS):
        accumulator.add(chunk, prediction_key)
    report = accumulator.report(thresholds, now)
    publisher.publish(report.metrics())
    if report_uri:
        storage.write_report(report_uri, "drift", now.strftime("%Y%m%dT%H%M%SZ"), report.to_dict(), report.to_html())
    return report
