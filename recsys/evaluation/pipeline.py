"""`recsys evaluate`: the full pipeline against the baselines on one global time split.

    T_fit = cutoff - (end - cutoff)         the ranker's training cutoff (a horizon as long as the test's)
    [.., T_fit)      history of the ranker's rows      candidate models fitted here (stage A)
    [T_fit, cutoff)  labels of the ranker's rows       users split 80/20: training rows / validation rows
    [.., cutoff)     history of the test               candidate models refitted here (stage B), baselines too
    [cutoff, end]    test: relevance

The EASE regularization is chosen on stage A (NDCG@10 of the window users), then used by the EASE baseline and
the pipeline's EASE channel alike. The pipeline recommends, for each test user, the top items of their candidate
pool by ranker score; the baselines recommend straight from their model. Everyone excludes the user's history.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.evaluation.data import DatasetFrames, load_dataset
from recsys.evaluation.metrics import CatalogStats, classification_report, ndcg_at_k, ranking_report
from recsys.models.base import DAY, CandidateModel, CandidateRequest, HistoryConfig, Query
from recsys.models.bundle import DEFAULT_QUOTAS, CandidateConfig, CandidateModels
from recsys.models.cooccurrence import CoOccurrence
from recsys.models.data import Catalog, Interactions, SignalConfig
from recsys.models.ease import EASE
from recsys.ranking.bundle import ModelBundle
from recsys.ranking.features import assemble, user_requests
from recsys.ranking.training import (
    LABEL_INTERACTION,
    LABEL_POSITIVE,
    LabelConfig,
    TrainingConfig,
    candidate_rows,
    default_rankers,
    horizon_labels,
    train_bundle,
)

log = logging.getLogger(__name__)

PIPELINE = "pipeline"


@dataclass(frozen=True)
class EvalConfig:
    ks: tuple[int, ...] = (5, 10, 25)
    dump_k: int = 25
    cutoff_quantile: float = 0.8
    # "auto": EVENT_VALUE >= 7 when every interaction is a 0-10 rating (MovieTweetings); a number: that threshold;
    # None: every interaction is relevant.
    positive_threshold: float | str | None = "auto"
    positive_event_types: tuple[str, ...] = ()
    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    quotas: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_QUOTAS))
    ease_l2_grid: tuple[float, ...] = (30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0, 30000.0, 100000.0)
    negatives_per_user: int | None = 150
    validation_share: float = 0.2
    new_item_days: float = 30.0
    seed: int = 0


def resolve_threshold(frame: pd.DataFrame, setting: float | str | None) -> float | None:
    if setting != "auto":
        return None if setting is None else float(setting)
    if "EVENT_VALUE" not in frame.columns:
        return None
    types = set(frame["EVENT_TYPE"].dropna().astype(str)) if "EVENT_TYPE" in frame.columns else {"rating"}
    values = pd.to_numeric(frame["EVENT_VALUE"], errors="coerce")
    if types <= {"rating", ""} and values.notna().all() and values.between(0, 10).all():
        return 7.0
    return None


def _excluding(request: CandidateRequest, seen: Mapping[str, CandidateRequest]) -> CandidateRequest:
    """The request, excluding everything the user interacted with before (their full history in `seen`)."""
    full = seen.get(request.user_id or "")
    return replace(request, exclude=frozenset(full.history if full else request.history))


def _without_times(request: CandidateRequest) -> CandidateRequest:
    """Binary history (uniform weights), as the EASE and item-kNN papers use."""
    return replace(request, history_times=())


def channel_recommendations(model: CandidateModel, requests: Mapping[str, CandidateRequest], users: Sequence[str],
                            k: int, history: HistoryConfig, *, uniform: bool = False) -> dict[str, list[str]]:
    """A baseline's top k for each user, straight from one candidate model, given the users' full histories."""
    recs = {}
    for user in users:
        request = _excluding(requests.get(user) or CandidateRequest(user_id=user), requests)
        if uniform:
            request = _without_times(request)
        idx, _ = model.recommend_query(Query.resolve(request, model.catalog, history), k)
        recs[user] = model.catalog.ids(idx)
    return recs


@dataclass
class AssembledPools:
    """Every test user's candidate pool with its assembled rows (users' rows are contiguous, in `users` order)."""

    users: list[str]
    offsets: np.ndarray
    item_ids: np.ndarray
    matrix: np.ndarray


def assemble_pools(bundle: ModelBundle, requests: Mapping[str, CandidateRequest], seen: Mapping[str, CandidateRequest],
                users: Sequence[str], quotas: Mapping[str, int]) -> AssembledPools:
    """Pool and assemble each user's candidates at the cutoff, exactly as a recommend request would."""
    models = bundle.candidates
    offsets = [0]
    ids: list[np.ndarray] = []
    blocks: list[np.ndarray] = []
    for user in users:
        query = models.query(_excluding(requests.get(user) or CandidateRequest(user_id=user), seen))
        pool = models.pool(query, quotas)
        ids.append(models.catalog.item_ids[pool.items])
        blocks.append(assemble(models, bundle.schema, query, pool.items))
        offsets.append(offsets[-1] + len(pool.items))
    return AssembledPools(list(users), np.asarray(offsets), np.concatenate(ids),
                       np.concatenate(blocks) if blocks else np.empty((0, len(bundle.schema.names)), np.float32))


def rank_pools(bundle: ModelBundle, ranker_name: str, pools: AssembledPools, labelled: pd.DataFrame, k: int
               ) -> tuple[dict[str, list[str]], pd.DataFrame]:
    """Each user's top k by the ranker's score, and every scored row with its labels."""
    scored = bundle.ranker(ranker_name).predict(pools.matrix, threads=0)
    recs: dict[str, list[str]] = {}
    for i, user in enumerate(pools.users):
        lo, hi = pools.offsets[i], pools.offsets[i + 1]
        order = np.argsort(-scored.score[lo:hi], kind="stable")[:k]
        recs[user] = pools.item_ids[lo:hi][order].tolist()
    rows = pd.DataFrame({"user_id": np.repeat(pools.users, np.diff(pools.offsets)), "item_id": pools.item_ids,
                         "pctr": scored.pctr, "pcvr": scored.pcvr, "score": scored.score})
    rows = rows.join(labelled.set_index(["user_id", "item_id"]), on=["user_id", "item_id"])
    for label in (LABEL_INTERACTION, LABEL_POSITIVE):
        rows[label] = rows[label].fillna(0).astype(int)
    return recs, rows


def tune_ease(catalog: Catalog, interactions: Interactions, cutoff: float, end: float, labels: LabelConfig,
              grid: Sequence[float], params: Mapping[str, Any], max_users: int = 2000, seed: int = 0
              ) -> tuple[float, dict[str, float]]:
    """The l2 of the grid with the best NDCG@10 for [cutoff, end) given the history before cutoff."""
    labelled = horizon_labels(interactions, catalog, cutoff, end, labels)
    relevant = labelled[labelled[LABEL_POSITIVE] == 1].groupby("user_id")["item_id"].apply(set).to_dict()
    histories = interactions.before(cutoff).histories(10_000)
    user_index = {u: i for i, u in enumerate(interactions.user_ids.tolist())}
    users = [u for u in relevant if user_index[u] in histories]
    users = sorted(np.random.default_rng(seed).permutation(users)[:max_users].tolist())
    scores: dict[str, float] = {}
    for l2 in grid:
        model = EASE.fit(catalog, interactions, cutoff, **{**params, "l2": l2})
        values = []
        for user in users:
            items, _ = histories[user_index[user]]
            history = tuple(catalog.item_ids[items].tolist())
            request = CandidateRequest(user_id=user, history=history, exclude=frozenset(history), now=cutoff)
            recs = model.recommend(request, 10).item_ids
            values.append(ndcg_at_k(recs, relevant[user] - set(history), 10) or 0.0)
        scores[str(l2)] = float(np.mean(values)) if values else 0.0
    best = max(grid, key=lambda l2: scores[str(l2)])
    return best, scores


def _split_users(users: Sequence[str], share: float, seed: int) -> tuple[list[str], list[str]]:
    shuffled = np.random.default_rng(seed).permutation(sorted(users)).tolist()
    n_valid = max(1, int(round(len(shuffled) * share)))
    return sorted(shuffled[n_valid:]), sorted(shuffled[:n_valid])


def _catalog_stats(catalog: Catalog, train: Interactions, cutoff: float, new_item_days: float,
                   expected: Mapping[str, Sequence[str]]) -> CatalogStats:
    pos = train.positives()
    pairs = np.unique(np.stack([pos.user.astype(np.int64), pos.item.astype(np.int64)]), axis=1)
    counts = np.bincount(pairs[1], minlength=len(catalog))
    first_seen = np.full(len(catalog), np.inf)
    np.minimum.at(first_seen, train.item, train.timestamp)
    created = np.where(np.isnan(catalog.created), first_seen, catalog.created)
    known = created < cutoff
    new = known & (created >= cutoff - new_item_days * DAY)
    popularity = {catalog.item_ids[i]: int(c) for i, c in enumerate(counts) if c}
    return CatalogStats(popularity, int(len(np.unique(pos.user))), int(known.sum()),
                        frozenset(catalog.item_ids[new].tolist()), expected)


def fit_pipeline(catalog: Catalog, interactions: Interactions, fit_cutoff: float, label_end: float,
                 labels: LabelConfig, config: EvalConfig,
                 lap: Callable[[str, float], float] = lambda name, since: time.perf_counter()
                 ) -> tuple[ModelBundle, float, dict[str, float]]:
    """The pipeline's training on a CSV dataset: EASE's l2 chosen on [fit_cutoff, label_end), candidate models at
    fit_cutoff, ranker rows from each active user's pool labelled by [fit_cutoff, label_end) (users split into
    training and validation), both rankers; the candidate models are refitted at label_end for serving."""
    t = time.perf_counter()
    ease_params = dict(config.candidates.channels["ease"][1]) if "ease" in config.candidates.channels else {}
    best_l2, l2_scores = (tune_ease(catalog, interactions, fit_cutoff, label_end, labels, config.ease_l2_grid,
                                    ease_params, seed=config.seed) if ease_params else (float("nan"), {}))
    candidate_config = config.candidates.with_params({"ease": {"l2": best_l2}}) if ease_params else config.candidates
    t = lap("tune_ease", t)
    models = CandidateModels.fit(catalog, interactions, fit_cutoff, candidate_config)
    requests = user_requests(models, interactions, fit_cutoff)
    seen = user_requests(models, interactions, fit_cutoff, max_items=len(interactions))
    labelled = horizon_labels(interactions, catalog, fit_cutoff, label_end, labels)
    train_users, valid_users = _split_users(labelled["user_id"].unique(), config.validation_share, config.seed)
    train_rows = candidate_rows(models, requests, train_users, labelled, config.quotas, seen=seen,
                                negatives_per_user=config.negatives_per_user, seed=config.seed)
    valid_rows = candidate_rows(models, requests, valid_users, labelled, config.quotas, seen=seen)
    t = lap("ranker_rows", t)
    training = TrainingConfig(candidates=candidate_config, rankers=default_rankers(LABEL_INTERACTION, LABEL_POSITIVE))
    bundle = train_bundle(catalog, interactions, fit_cutoff, train_rows, valid_rows, training, models=models,
                          serve_cutoff=label_end)
    lap("train", t)
    return bundle, best_l2, l2_scores


def _prepare(dataset: str | Path | DatasetFrames, config: EvalConfig
             ) -> tuple[DatasetFrames, float | None, LabelConfig, Catalog, Interactions]:
    frames = dataset if isinstance(dataset, DatasetFrames) else load_dataset(dataset)
    threshold = resolve_threshold(frames.interactions, config.positive_threshold)
    labels = LabelConfig(min_value=threshold, event_types=tuple(config.positive_event_types))
    catalog = Catalog.from_frame(frames.items, frames.interactions["ITEM_ID"].astype(str))
    interactions = Interactions.from_frame(frames.interactions, catalog, SignalConfig())
    return frames, threshold, labels, catalog, interactions


def train_model(dataset: str | Path | DatasetFrames, model_dir: str | Path, *, horizon_share: float = 0.2,
                config: EvalConfig = EvalConfig()) -> ModelBundle:
    """Train a servable bundle on a whole CSV dataset (what `make demo` runs; no held-out test):
    the ranker learns from the last `horizon_share` of the time span, the served candidate models from all of it."""
    _, _, labels, catalog, interactions = _prepare(dataset, config)
    start, end = float(interactions.timestamp.min()), float(interactions.timestamp.max()) + 1.0
    bundle, _, _ = fit_pipeline(catalog, interactions, end - horizon_share * (end - start), end, labels, config)
    bundle.save(Path(model_dir))
    return bundle


def evaluate(dataset: str | Path | DatasetFrames, *, cutoff: float | None = None, out_dir: str | Path | None = None,
             dump_recs: str | Path | None = None, save_model: str | Path | None = None,
             config: EvalConfig = EvalConfig()) -> dict[str, Any]:
    """Run the comparison; write report.json, report.html and plots to `out_dir` (if given). Returns the report.

    `save_model` writes the evaluated bundle (candidate models fitted at the cutoff, the rankers) there: a model
    directory the inference server and the recommend API load.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 2)
        log.info("%s: %.1fs", name, now - since)
        return now

    t = time.perf_counter()
    frames, threshold, labels, catalog, interactions = _prepare(dataset, config)
    end = float(interactions.timestamp.max()) + 1.0
    cutoff = float(cutoff) if cutoff is not None else float(np.quantile(interactions.timestamp, config.cutoff_quantile))
    if not interactions.timestamp.min() < cutoff < end:
        raise ValueError(f"cutoff: {cutoff} is not inside the data's time range")
    fit_cutoff = cutoff - (end - cutoff)
    t = lap("load", t)

    bundle, best_l2, l2_scores = fit_pipeline(catalog, interactions, fit_cutoff, cutoff, labels, config, lap)
    t = time.perf_counter()

    # Stage B: test users at cutoff.
    models_b = bundle.candidates
    requests_b = user_requests(models_b, interactions, cutoff)
    seen_b = user_requests(models_b, interactions, cutoff, max_items=len(interactions))
    labelled_b = horizon_labels(interactions, catalog, cutoff, end, labels)
    relevant_all = labelled_b[labelled_b[LABEL_POSITIVE] == 1].groupby("user_id")["item_id"].apply(set).to_dict()
    relevant = {}
    cold_users = 0
    for user, items in relevant_all.items():
        history = set(seen_b[user].history) if user in seen_b else set()
        if not history:
            cold_users += 1
            continue
        if items - history:
            relevant[user] = frozenset(items - history)
    users = sorted(relevant)
    max_k = max(max(config.ks), config.dump_k)

    systems: dict[str, dict[str, list[str]]] = {}
    history = replace(models_b.history, max_items=len(interactions))  # baselines see the full history
    systems["popularity"] = channel_recommendations(models_b["popularity"], seen_b, users, max_k, history)
    systems["trending"] = channel_recommendations(models_b["trending"], seen_b, users, max_k, history)
    item_knn = CoOccurrence.fit(catalog, interactions, cutoff, beta=0.5, shrink=0.0, neighbours=200, name="item_knn")
    systems["item_knn"] = channel_recommendations(item_knn, seen_b, users, max_k, history, uniform=True)
    systems["ease"] = channel_recommendations(models_b["ease"], seen_b, users, max_k, history, uniform=True)
    t = lap("baselines", t)
    pools = assemble_pools(bundle, requests_b, seen_b, users, config.quotas)
    ranked = {name: rank_pools(bundle, name, pools, labelled_b, max_k) for name in bundle.rankers}
    systems[PIPELINE] = ranked[bundle.default_ranker][0]
    for name in bundle.rankers:
        if name != bundle.default_ranker:
            systems[f"{PIPELINE}_{name}"] = ranked[name][0]
    t = lap("rank_test_users", t)

    stats = _catalog_stats(catalog, interactions.before(cutoff), cutoff, config.new_item_days, systems["popularity"])
    ranking = {name: ranking_report(recs, relevant, config.ks, stats) for name, recs in systems.items()}
    rows = ranked[bundle.default_ranker][1]
    clicked = rows[rows[LABEL_INTERACTION] == 1]
    classification = {
        "pctr": classification_report(rows[LABEL_INTERACTION].to_numpy(), rows["pctr"].to_numpy()),
        "pcvr": classification_report(clicked[LABEL_POSITIVE].to_numpy(), clicked["pcvr"].to_numpy()),
        "score": classification_report(rows[LABEL_POSITIVE].to_numpy(), rows["score"].to_numpy()),
    }
    pool_recall = float(np.mean([len(set(rows_u) & relevant[u]) / len(relevant[u]) for u, rows_u in
                                 rows.groupby("user_id")["item_id"].apply(list).items()]))
    t = lap("metrics", t)

    report: dict[str, Any] = {
        "conditions": {
            "dataset": frames.source,
            "interactions": int(len(interactions)),
            "users": int(interactions.n_users),
            "items": int(len(catalog)),
            "cutoff": cutoff,
            "cutoff_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cutoff)),
            "ranker_fit_cutoff_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(fit_cutoff)),
            "end_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end)),
            "train_interactions": int((interactions.timestamp < cutoff).sum()),
            "test_interactions": int((interactions.timestamp >= cutoff).sum()),
            "relevance": (f"EVENT_VALUE >= {threshold}" if threshold is not None else
                          f"EVENT_TYPE in {list(labels.event_types)}" if labels.event_types else "any interaction"),
            "test_users": len(users),
            "cold_test_users_skipped": cold_users,
            "ks": list(config.ks),
            "ease_l2": best_l2,
            "ease_l2_ndcg10": l2_scores,
            "quotas": dict(config.quotas),
            "candidate_pool_recall": pool_recall,
            "cores": os.cpu_count(),
            "runtime_s": None,
        },
        "ranking": ranking,
        "classification": classification,
        "rankers": {name: r.info for name, r in bundle.rankers.items()},
        "default_ranker": bundle.default_ranker,
        "timings_s": timings,
    }
    if dump_recs is not None:
        Path(dump_recs).parent.mkdir(parents=True, exist_ok=True)
        with open(dump_recs, "w") as out:
            for user in users:
                out.write(json.dumps({"user_id": user, "items": systems[PIPELINE][user][: config.dump_k]}) + "\n")
    if save_model is not None:
        bundle.metrics = {"offline_evaluation": {"conditions": report["conditions"],
                                                 "pipeline@10": ranking[PIPELINE]["@10"]}}
        bundle.save(Path(save_model))
    report["conditions"]["runtime_s"] = round(time.perf_counter() - started, 1)
    if out_dir is not None:
        from recsys.evaluation.report import write_report

        write_report(report, Path(out_dir))
    return report
