"""The model artifact: candidate models, the feature schema and the rankers, versioned together.

Layout of the directory (SageMaker's /opt/ml/model, shipped as model.tar.gz):

    bundle.json               version, schema, rankers, default ranker, candidates version, metrics
    candidates/               recsys.models.CandidateModels (catalog.npz, <channel>.npz/.json, manifest.json)
    rankers/<name>/           recsys.ranking.ranker.TwoHeadRanker (ranker.json + head files)

The inference server loads the schema and rankers only; the recommend API loads the candidates and schema.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys.models.bundle import CandidateModels
from recsys.ranking.features import FeatureSchema
from recsys.ranking.ranker import RankerError, TwoHeadRanker

BUNDLE_FILE = "bundle.json"
CANDIDATES_DIR = "candidates"
RANKERS_DIR = "rankers"


@dataclass
class ModelBundle:
    schema: FeatureSchema
    rankers: dict[str, TwoHeadRanker]
    default_ranker: str
    candidates: CandidateModels | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    version: str = ""

    def __post_init__(self) -> None:
        if self.default_ranker not in self.rankers:
            raise RankerError(f"default_ranker: {self.default_ranker!r} is not one of {', '.join(self.rankers)}")
        for name, ranker in self.rankers.items():
            if ranker.feature_names != self.schema.names:
                raise RankerError(f"rankers.{name}: trained on another feature schema than the bundle's")
        if not self.version:
            parts = [self.schema.id, self.candidates.version if self.candidates else ""]
            parts += [f"{n}:{r.version}" for n, r in sorted(self.rankers.items())]
            digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:10]
            self.version = f"bundle-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{digest}"

    def ranker(self, name: str | None = None) -> TwoHeadRanker:
        name = name or self.default_ranker
        if name not in self.rankers:
            raise RankerError(f"ranker: unknown {name!r}; this bundle has {', '.join(self.rankers)}")
        return self.rankers[name]

    def save(self, directory: Path | str) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.candidates is not None:
            self.candidates.save(directory / CANDIDATES_DIR)
        for name, ranker in self.rankers.items():
            ranker.save(directory / RANKERS_DIR / name)
        document = {
            "version": self.version,
            "schema": self.schema.to_dict(),
            "schema_id": self.schema.id,
            "rankers": {name: ranker.version for name, ranker in self.rankers.items()},
            "default_ranker": self.default_ranker,
            "candidates": self.candidates.version if self.candidates else None,
            "metrics": self.metrics,
        }
        path = directory / BUNDLE_FILE
        path.write_text(json.dumps(document, indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, directory: Path | str, *, with_candidates: bool = True, rankers: tuple[str, ...] | None = None
             ) -> "ModelBundle":
        directory = Path(directory)
        path = directory / BUNDLE_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path}: no model bundle here")
        document = json.loads(path.read_text())
        names = rankers or tuple(document["rankers"])
        loaded = {name: TwoHeadRanker.load(directory / RANKERS_DIR / name) for name in names}
        for name, ranker in loaded.items():
            if ranker.version != document["rankers"].get(name):
                raise RankerError(f"rankers.{name}: artifact version {ranker.version} does not match {BUNDLE_FILE}")
        candidates = None
        if with_candidates and document.get("candidates"):
            candidates = CandidateModels.load(directory / CANDIDATES_DIR)
        default = document["default_ranker"] if document["default_ranker"] in loaded else names[0]
        return cls(FeatureSchema.from_dict(document["schema"]), loaded, default, candidates,
                   document.get("metrics", {}), document["version"])
