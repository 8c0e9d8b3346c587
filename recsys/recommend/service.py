"""The recommend request flow, independent of transport: `Recommender.handle(ApiRequest) -> dict`.

1. user state: the PIT user features (recent items, affinities, age) through `FeatureReader`;
2. candidates: `candidates.candidate_pool` (channels with quotas, deduplicated, exploration);
3. enrichment: PIT item features (when the model's schema has them), user batch features from the online
   Feature Store, item batch features and item metadata from an in-process TTL cache;
4. rows: `recsys.ranking.features.assemble`, the function training uses;
5. scoring on the endpoint variant of the user's sticky arm (`assignment.assign_variant`), under a deadline and
   a circuit breaker; on failure the fallback ranking (affinity x popularity) answers and the response is
   marked degraded;
6. filters by name with values (`FilterRegistry`);
7. the blender (`recsys.blender.blend`) with rules hot-reloaded from SSM; every list and shelf is filled to its
   size (`_blend_filled`: a deeper supply, then the popularity ranking of the whole catalogue, then what "not
   interested" excluded), so a feed never runs dry while the catalogue has items to give;
8. exposure logging and the daily showcase snapshot, off the hot path (`exposure.SideEffects`).

A store outage (Redis/MemoryDB, the Feature Store) degrades the response instead of failing it: each store has a
circuit breaker (skipped at once while open), and a store that fails in a request is skipped for the rest of it;
the parts it would have given are left out and named in `degradedReasons`.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from typing import Any

import numpy as np

from recsys.blender import BlendRequest, BlenderConfig, Candidate, ItemInfo, ShelfInput, Showcase, WatchState, blend
from recsys.blender.config import PlacementConfig
from recsys.config import CHAMPION_VARIANT, RecommendConfig
from recsys.features import FeatureReader
from recsys.filters import Filter, FilterNotFoundError, FilterParameterError, FilterRegistry, fill_to_k
from recsys.models.base import CandidateRequest, Query
from recsys.models.bundle import CandidateModels
from recsys.monitoring.showcase_health import Snapshot, SnapshotStore
from recsys.ranking.features import ExternalColumns, FeatureSchema, assemble, request_from_pit
from recsys.recommend import candidates as pools
from recsys.recommend.assignment import assign_variant
from recsys.recommend.breaker import CircuitBreaker, StoreSkipped, guarded_call
from recsys.recommend.exposure import ShownList, SideEffects, deliver, impression_events
from recsys.recommend.request import ApiRequest
from recsys.recommend.scoring import GuardedScorer, ScoringUnavailable, fallback_scores
from recsys.recommend.stores import EditorBoosts, ImpressionStore, Loader, TtlCache, exposures_of
from recsys.tracker.service import ServiceUnavailable
from recsys.tracker.sinks import EventSink
from recsys.tracker.validation import FieldError, RequestRejected

log = logging.getLogger(__name__)
TRUE_TEXT = frozenset({"true", "1", "yes", "y", "t"})
LIST_SHELF = "recommendations"
BACKFILL = "backfill"  # the channel of items that fill a list after its ranked candidates
BACKFILL_PAGE = 200  # backfill items ranked at a time (then 4x as many, while a list needs more)
BACKFILL_STEP = 1e-9  # score step between backfill items, relative to the lowest ranked score
PLACEMENT_EXPERIMENT = "placement"
CONTROL_ARM = "control"


@dataclass
class Backends:
    """The adapters the flow reads and writes through; None switches a part off (it is then not degraded)."""

    scorer: GuardedScorer
    reader: FeatureReader | None = None
    user_features: Callable[[str], Mapping[str, Any] | None] | None = None  # online Feature Store, user group
    item_features: Loader | None = None  # online Feature Store, item group (behind the TTL cache)
    item_metadata: Loader | None = None  # catalog columns (behind the TTL cache)
    impressions: ImpressionStore | None = None
    boosts: EditorBoosts | None = None
    snapshots: SnapshotStore | None = None
    sinks: Sequence[EventSink] = ()
    store_errors: tuple[type[BaseException], ...] = (OSError,)
    # One circuit breaker per store (REDIS, FEATURE_STORE): while open, the store is skipped at once and the
    # answer is degraded; its half-open trials find the store back. A store without one is always called.
    breakers: Mapping[str, CircuitBreaker] = field(default_factory=dict)
    # Whether the blender rules are current (False while their store fails and the last good rules serve).
    rules_current: Callable[[], bool] = lambda: True


REDIS = "redis"  # Redis / MemoryDB: PIT features, item metadata, impressions, boosts, filters, snapshots
FEATURE_STORE = "feature_store"  # the online Feature Store's user and item batch features
STORE_OF_PART = {"user_batch_features": FEATURE_STORE, "item_batch_features": FEATURE_STORE}  # others: REDIS


@dataclass
class ResponseStats:
    latency_ms: float = 0.0
    degraded: bool = False
    fallback: bool = False
    circuit_open: bool = False
    boosts_disabled: int = 0
    boosts_capped: int = 0
    exposures: int = 0


@dataclass
class _UserState:
    pit: dict[str, Any] = field(default_factory=dict)
    request: CandidateRequest | None = None
    interactions: list[tuple[str, str]] = field(default_factory=list)
    watch: dict[str, WatchState] = field(default_factory=dict)
    clicks: dict[str, list[float]] = field(default_factory=dict)
    age: int | None = None


@dataclass
class _Call:
    """The state of one request."""

    request: ApiRequest
    now: float
    day: date
    recommendation_id: str
    variant: str
    reasons: list[str] = field(default_factory=list)
    down: set[str] = field(default_factory=set)  # stores that failed (or whose breaker was open) in this request
    stats: ResponseStats = field(default_factory=ResponseStats)
    # Read while the endpoint scores (see Recommender._prefetch); None: not read yet.
    boosts: frozenset[str] | None = None
    impressions: dict[str, tuple[float, ...]] | None = None
    # item_clicks of the items whose PIT features this request has read (the blender's CTR reuses them)
    pit_clicks: dict[str, float] = field(default_factory=dict)

    def degrade(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in TRUE_TEXT


def item_info(meta: Mapping[str, Any]) -> ItemInfo:
    franchise = meta.get("FRANCHISE") or None
    return ItemInfo(franchise=str(franchise) if franchise else None, paid=_truthy(meta.get("IS_PAID", "")),
                    animated_series=_truthy(meta.get("IS_ANIMATED_SERIES", "")))


class Recommender:
    def __init__(self, models: CandidateModels, schema: FeatureSchema, config: RecommendConfig,
                 blender: Callable[[], BlenderConfig], filters: FilterRegistry, backends: Backends, *,
                 model_version: str = "", background: bool = False, clock: Callable[[], float] = time.time,
                 on_response: Callable[[ResponseStats], None] = lambda stats: None) -> None:
        self.models = models
        self.schema = schema
        self.config = config
        self.blender = blender
        self.filters = filters
        self.backends = backends
        self.model_version = model_version
        self.clock = clock
        self.on_response = on_response
        self.side_effects = SideEffects(background)
        self.item_cache = TtlCache(config.item_cache_ttl_s)
        self.feature_cache = TtlCache(config.item_cache_ttl_s)
        self.variant_weights = config.variant_weights or ((CHAMPION_VARIANT, 1.0),)
        self._filters: dict[str, tuple[float, Filter]] = {}  # name -> (expiry on the monotonic clock, filter)
        self._created = pools.item_created(models)
        self._item_to_item = [name for name, model in models.models.items() if model.item_to_item]

    # --- entry point --------------------------------------------------------------------------------------------
    def handle(self, request: ApiRequest) -> dict[str, Any]:
        began = time.perf_counter()
        flt, stale_filter = self._filter(request)
        now = request.context.time if request.context.time is not None else self.clock()
        subject = request.user_id or request.session_id or "anonymous"
        call = _Call(request, now, datetime.fromtimestamp(now, timezone.utc).date(), uuid.uuid4().hex,
                     assign_variant(subject, self.config.experiment, self.variant_weights))
        if stale_filter:
            call.degrade("store_unavailable:filters")
        if not self.backends.rules_current():
            call.degrade("store_unavailable:blender_rules")
        route = getattr(self, f"_route_{request.route}")
        payload, shown = route(call, flt)
        call.stats.latency_ms = (time.perf_counter() - began) * 1000.0
        call.stats.degraded = bool(call.reasons)
        payload.update({"recommendationId": call.recommendation_id, "variant": call.variant,
                        "degraded": call.stats.degraded, "degradedReasons": list(call.reasons),
                        "modelVersion": self.model_version})
        if request.user_id and request.log_exposure:
            self._log_exposures(call, shown)
        self.on_response(call.stats)
        log.debug("recommend %s user=%s variant=%s degraded=%s", request.route, request.user_id, call.variant,
                  call.reasons)
        return payload

    def close(self) -> None:
        self.side_effects.close()

    # --- routes -------------------------------------------------------------------------------------------------
    def _route_recommendations(self, call: _Call, flt: Filter | None) -> tuple[dict[str, Any], list[ShownList]]:
        k = call.request.num_results
        user = self._user_state(call)
        query = self.models.query(user.request)
        ranked = self._ranked_pool(call, user, query)
        config = self.blender()
        config = replace(config, placement=PlacementConfig(), shelves=replace(config.shelves, max_items=k, min_items=1))
        showcase = self._blend_filled(call, user, [(LIST_SHELF, ranked)], flt, query, config)
        shelf = showcase.shelf(LIST_SHELF)
        placed = () if shelf is None else shelf.items
        items = [self._item(call, p.item_id, p.score, p.channel, p.position, p.rules) for p in placed]
        return {"itemList": items, **_shortfall(k, len(items))}, [ShownList(tuple(item["itemId"] for item in items))]

    def _route_showcase(self, call: _Call, flt: Filter | None) -> tuple[dict[str, Any], list[ShownList]]:
        config = self.blender()
        user = self._user_state(call)
        query = self.models.query(user.request)
        supplies = []
        for shelf_id, channel in self.config.showcase_shelves:
            if channel == "exploit":
                ranked = self._ranked_pool(call, user, query)
            elif channel in self.models:
                found = self.models.recommend(channel, query, self._room(config.shelves.max_items) * 2)
                ranked = list(zip(found.item_ids, found.scores.astype(float).tolist(), [channel] * len(found)))
            else:
                continue
            supplies.append((shelf_id, ranked))
        showcase = self._blend_filled(call, user, supplies, flt, query, config)
        shelves = [{"shelfId": shelf.shelf_id, "kind": shelf.kind, "position": shelf.position,
                    "rules": list(shelf.rules),
                    "items": [self._item(call, p.item_id, p.score, p.channel, p.position, p.rules)
                              for p in shelf.items]}
                   for shelf in showcase.shelves]
        if call.request.user_id:
            self._store_snapshot(call, showcase, config)
        shown = [ShownList(tuple(p.item_id for p in shelf.items), shelf.shelf_id, shelf.position)
                 for shelf in showcase.shelves]
        return {"shelves": shelves, "platform": call.request.context.platform,
                "fingerprint": showcase.fingerprint}, shown

    def _route_ranking(self, call: _Call, flt: Filter | None) -> tuple[dict[str, Any], list[ShownList]]:
        user = self._user_state(call)
        query = self.models.query(user.request)
        item_ids = list(call.request.item_list)
        scores = self._score(call, user, query, self.models.catalog.indices(item_ids), item_ids)
        ranked = sorted(zip(item_ids, scores.tolist(), ["ranking"] * len(item_ids)), key=lambda r: (-r[1], r[0]))
        kept = self._take(call, flt, ranked, len(ranked), query, user, backfill=False)
        items = [self._item(call, i, s, c, position, ()) for position, (i, s, c) in enumerate(kept)]
        return {"personalizedRanking": items}, [ShownList(tuple(i for i, _, _ in kept))]

    def _route_related(self, call: _Call, flt: Filter | None) -> tuple[dict[str, Any], list[ShownList]]:
        item_id = call.request.item_id or ""
        if self.models.catalog.index_of(item_id) < 0:
            raise RequestRejected(404, [FieldError("itemId", f"unknown item {item_id!r}")])
        k = call.request.num_results
        user = self._user_state(call) if call.request.user_id else _UserState()
        base = user.request or CandidateRequest(now=call.now)
        query = self.models.query(replace(base, item_id=item_id, exclude=base.exclude | {item_id}))
        lists = [self.models.recommend(name, query, self._room(k)) for name in self._item_to_item]
        ranked = _interleave([list(zip(c.item_ids, c.scores.astype(float).tolist(), [c.channel] * len(c)))
                              for c in lists])
        current = self._metadata(call, [item_id]).get(item_id, {})
        kept = self._take(call, flt, ranked, k, query, user, current_item=current)
        items = [self._item(call, i, s, c, position, ()) for position, (i, s, c) in enumerate(kept)]
        return {"itemList": items, "itemId": item_id, **_shortfall(k, len(items))}, \
            [ShownList(tuple(i for i, _, _ in kept))]

    def _route_popular(self, call: _Call, flt: Filter | None) -> tuple[dict[str, Any], list[ShownList]]:
        return self._channel_list(call, flt, "popularity")

    def _route_trending(self, call: _Call, flt: Filter | None) -> tuple[dict[str, Any], list[ShownList]]:
        return self._channel_list(call, flt, "trending")

    def _channel_list(self, call: _Call, flt: Filter | None, channel: str) -> tuple[dict[str, Any], list[ShownList]]:
        k = call.request.num_results
        user = self._user_state(call) if call.request.user_id else _UserState()
        query = self.models.query(user.request or CandidateRequest(now=call.now))
        found = self.models.recommend(channel, query, self._room(k) * 2) if channel in self.models else None
        ranked = [] if found is None else list(zip(found.item_ids, found.scores.astype(float).tolist(),
                                                    [channel] * len(found)))
        kept = self._take(call, flt, ranked, k, query, user)
        items = [self._item(call, i, s, c, position, ()) for position, (i, s, c) in enumerate(kept)]
        return {"itemList": items, **_shortfall(k, len(items))}, [ShownList(tuple(i for i, _, _ in kept))]

    # --- steps --------------------------------------------------------------------------------------------------
    def _guard(self, call: _Call, part: str, read: Callable[[], Any], default: Any) -> Any:
        """`read()`, or `default` when its store fails or its breaker is open (the response is then degraded).

        A store that failed once in a request is not called again in it."""
        store = STORE_OF_PART.get(part, REDIS)
        if store in call.down:
            call.degrade(f"store_unavailable:{part}")
            return default
        try:
            return guarded_call(self.backends.breakers.get(store), read, self.backends.store_errors)
        except StoreSkipped as exc:
            call.down.add(store)
            call.degrade(f"store_unavailable:{part}")
            if exc.__cause__ is not None:
                log.warning("recommend: %s unavailable: %r", part, exc.__cause__)
            return default

    def _user_state(self, call: _Call) -> _UserState:
        user_id = call.request.user_id or ""
        reader = self.backends.reader
        pit = self._guard(call, "pit_features", lambda: reader.read(user_id, [], now=call.now).user, {}) \
            if reader is not None and user_id else {}
        state = _UserState(pit=pit)
        recent = pit.get("user_recent_items") or []
        state.request = request_from_pit(user_id, pit, call.now,
                                         exclude=frozenset(entry["item_id"] for entry in recent))
        for entry in recent:
            state.interactions.append((entry["item_id"], entry["event_type"]))
            if entry.get("progress") is not None:
                state.watch[entry["item_id"]] = WatchState(float(entry["progress"]), float(entry["timestamp"]))
            if entry["event_type"] == "click":
                state.clicks.setdefault(entry["item_id"], []).append(float(entry["timestamp"]))
        age = pit.get("user_age")
        state.age = int(age) if age is not None and age >= 0 else None
        return state

    def _ranked_pool(self, call: _Call, user: _UserState, query: Query) -> list[tuple[str, float, str]]:
        seed = pools.daily_seed(call.request.user_id or "anonymous", call.day.isoformat())
        young = pools.young_items(self._created, call.now, self.config.exploration_item_age_cutoff_days)
        pool = pools.candidate_pool(self.models, query, self.config.channel_quotas, self.config.max_candidates,
                                    exploration_weight=self.config.exploration_weight, young=young, seed=seed)
        item_ids = self.models.catalog.ids(pool.items)
        scores = self._score(call, user, query, pool.items, item_ids, lambda: self._prefetch(call, item_ids))
        order = np.lexsort((pool.items, -scores))  # score descending; ties by catalog index, deterministic
        return [(item_ids[i], float(scores[i]), pool.channels[i]) for i in order.tolist()]

    def _score(self, call: _Call, user: _UserState, query: Query, indices: np.ndarray, item_ids: list[str],
               while_waiting: Callable[[], None] = lambda: None) -> np.ndarray:
        external = self._external(call, user, item_ids)
        rows = assemble(self.models, self.schema, query, indices, external)
        if len(rows) == 0:
            return np.empty(0)
        try:
            return self.backends.scorer.score(rows, call.variant, self.schema.id, while_waiting)
        except ScoringUnavailable as exc:
            call.stats.fallback = True
            call.stats.circuit_open = call.stats.circuit_open or exc.reason == "circuit_open"
            call.degrade(f"endpoint_{exc.reason}")
            log.warning("recommend: scoring fell back (%s)", exc)
            return fallback_scores(rows, self.schema.names)

    def _external(self, call: _Call, user: _UserState, item_ids: list[str]) -> ExternalColumns | None:
        schema = self.schema
        if not schema.external:
            return None
        backends = self.backends
        user_row: Mapping[str, Any] = {}
        if (schema.user or schema.pair) and backends.user_features is not None and call.request.user_id:
            user_id = call.request.user_id
            user_row = self._guard(call, "user_batch_features", lambda: backends.user_features(user_id), None) or {}
        item_rows: Mapping[str, Mapping[str, Any]] = {}
        if (schema.item or schema.pair) and backends.item_features is not None:
            loader = backends.item_features
            item_rows = self._guard(call, "item_batch_features",
                                    lambda: self.feature_cache.get_many(item_ids, loader), {})
        pit_items: Any = {}
        if schema.pit_item and backends.reader is not None:
            reader = backends.reader
            pit_items = self._guard(call, "pit_features",
                                    lambda: reader.read(call.request.user_id or "", item_ids, now=call.now).items, {})
            if pit_items:
                call.pit_clicks.update(zip(pit_items.item_ids, pit_items.column("item_clicks").tolist()))
        return ExternalColumns.from_serving(schema, item_ids, user=user_row, items=item_rows, pit_user=user.pit,
                                            pit_items=pit_items)

    def _prefetch(self, call: _Call, item_ids: list[str]) -> None:
        """The reads the filters and the blender will need, done while the endpoint scores the pool."""
        self._metadata(call, item_ids)  # fills the TTL cache
        call.boosts = self._boosts(call)
        call.impressions = self._impressions(call)

    def _metadata(self, call: _Call, item_ids: Iterable[str]) -> dict[str, Mapping[str, Any]]:
        loader = self.backends.item_metadata
        if loader is None:
            return {}
        return self._guard(call, "item_metadata", lambda: self.item_cache.get_many(item_ids, loader), {})

    def _room(self, k: int) -> int:
        """Items first handed to the blender for k shown: its rules may remove some (more follow if they do)."""
        return 2 * k + 10

    def _take(self, call: _Call, flt: Filter | None, ranked: list[tuple[str, float, str]], n: int, query: Query,
              user: _UserState, *, backfill: bool = True, current_item: Mapping[str, Any] | None = None
              ) -> list[tuple[str, float, str]]:
        """The first n items that the filter keeps: from `ranked`, then (backfill) from the popularity ranking of
        the whole catalogue. Fewer than n only when the catalogue has no more that the filter keeps."""
        by_id = {item_id: (item_id, score, channel) for item_id, score, channel in ranked}
        metadata: dict[str, Mapping[str, Any]] = {}
        more = self._backfill(call, query, by_id, metadata if flt is not None else None) if backfill else iter(())
        if flt is None:
            ids = [item_id for item_id, _, _ in ranked[:n]]
            ids += itertools.islice(more, n - len(ids))
            return [by_id[item_id] for item_id in ids]
        metadata.update(self._metadata(call, by_id))
        try:
            kept = fill_to_k(flt, list(by_id), n, more, items=metadata, user_interactions=user.interactions,
                             current_user=self._current_user(user, call), params=dict(call.request.filter_values),
                             current_item=current_item)
        except FilterParameterError as exc:
            raise RequestRejected(400, [FieldError("filterValues", str(exc))]) from None
        return [by_id[item_id] for item_id in kept]

    def _backfill(self, call: _Call, query: Query, by_id: dict[str, tuple[str, float, str]],
                  metadata: dict[str, Mapping[str, Any]] | None) -> Iterator[str]:
        """The items after `by_id`'s, lazily: the popularity ranking of the whole catalogue (the catalogue's order
        without a popularity channel), the user's recent items left out. Each is added to `by_id` with a score
        below every ranked one, so that it follows them; with `metadata`, a page's metadata is read before the
        page is offered (the filter judges on it)."""
        floor = min((score for _, score, _ in by_id.values()), default=0.0)
        step = BACKFILL_STEP * max(1.0, abs(floor))
        offered, wanted, rank = 0, len(by_id) + BACKFILL_PAGE, 0
        limit = min(len(self.models.catalog), self.config.max_list_supply)
        while offered < limit:
            ranking = self._catalogue_ranking(query, min(wanted, limit))
            page = [item_id for item_id in ranking[offered:] if item_id not in by_id]
            offered = len(ranking)
            if metadata is not None and page:
                metadata.update(self._metadata(call, page))
            for item_id in page:
                rank += 1
                by_id[item_id] = (item_id, floor - rank * step, BACKFILL)
                yield item_id
            if offered < min(wanted, limit):
                return  # the ranking has no more items
            wanted *= 4

    def _catalogue_ranking(self, query: Query, n: int) -> list[str]:
        if "popularity" in self.models:
            return self.models.recommend("popularity", query, n).item_ids
        catalog = self.models.catalog
        keep = np.setdiff1d(np.arange(len(catalog)), query.exclude, assume_unique=False)[:n]
        return catalog.ids(keep)

    def _blend_filled(self, call: _Call, user: _UserState, supplies: list[tuple[str, list[tuple[str, float, str]]]],
                      flt: Filter | None, query: Query, config: BlenderConfig) -> Showcase:
        """The showcase of `supplies` (shelf id, ranked candidates), filled: a shelf that shows fewer than
        `config.shelves.max_items` gets a supply 4x deeper (its ranked items, then the backfill) while there is
        more; a shelf still short then may show what "not interested" excluded. So a feed runs dry only when the
        catalogue has nothing more that the filter and the rules keep (up to `max_list_supply` items)."""
        size = config.shelves.max_items
        depth = dict.fromkeys((shelf_id for shelf_id, _ in supplies), self._room(size))
        taken: dict[str, list[tuple[str, float, str]]] = {}
        stale = set(depth)  # shelves whose supply is to be taken (again, deeper)
        resurface = False
        while True:
            for shelf_id, ranked in supplies:
                if shelf_id in stale:
                    taken[shelf_id] = self._take(call, flt, ranked, depth[shelf_id], query, user)
            inputs = [ShelfInput(shelf_id, [Candidate(i, s, c) for i, s, c in taken[shelf_id]])
                      for shelf_id, _ in supplies]
            showcase = self._blend(call, user, inputs, config, resurface)
            shown = {shelf.shelf_id: len(shelf.items) for shelf in showcase.shelves}
            short = [shelf_id for shelf_id, _ in supplies if shown.get(shelf_id, 0) < size]
            deeper = [shelf_id for shelf_id in short if len(taken[shelf_id]) == depth[shelf_id]]
            stale = set(deeper)
            if deeper:
                depth.update((shelf_id, depth[shelf_id] * 4) for shelf_id in deeper)
            elif short and not resurface and config.not_interested.enabled:
                resurface = True
            else:
                break
        call.stats.boosts_disabled += showcase.summary.get("boost.disabled_low_ctr", 0)
        call.stats.boosts_capped += (showcase.summary.get("boost_cap.dropped_shelf_cap", 0)
                                     + showcase.summary.get("boost_cap.dropped_page_cap", 0))
        return showcase

    def _current_user(self, user: _UserState, call: _Call) -> dict[str, Any]:
        current: dict[str, Any] = {}
        if user.age is not None:
            current["AGE"] = user.age
        if user.pit.get("user_profile_topics"):
            current["TOPICS"] = "|".join(user.pit["user_profile_topics"])
        if call.request.context.geography:
            current["GEOGRAPHY"] = call.request.context.geography
        current["PLATFORM"] = call.request.context.platform
        return current

    def _blend(self, call: _Call, user: _UserState, shelves: list[ShelfInput], config: BlenderConfig,
               resurface_excluded: bool = False) -> Showcase:
        shown = {c.item_id for shelf in shelves for c in shelf.items}
        metadata = self._metadata(call, shown)
        boosts = self._boosts(call)
        ctr = self._ctr(call, boosts, shelves, config) if boosts else {}
        impressions = self._impressions(call)
        arms = sorted({override.arm for override in config.placement.overrides})
        arm = assign_variant(call.request.user_id or call.request.session_id or "anonymous", PLACEMENT_EXPERIMENT,
                             [(name, 1.0) for name in [CONTROL_ARM, *arms]]) if arms else None
        return blend(BlendRequest(
            user_id=call.request.user_id or "anonymous", day=call.day, now=call.now,
            platform=call.request.context.platform, shelves=shelves,
            items={item: item_info(meta) for item, meta in metadata.items()}, boosts=boosts, ctr=ctr,
            watch=user.watch, exposures=exposures_of(impressions, user.clicks),
            anonymous=call.request.user_id is None, user_age=user.age, placement_arm=arm,
            resurface_excluded=resurface_excluded,
        ), config)

    def _boosts(self, call: _Call) -> frozenset[str]:
        boosts = self.backends.boosts
        if call.boosts is None:
            call.boosts = frozenset() if boosts is None else self._guard(call, "editor_boosts", boosts.get, frozenset())
        return call.boosts

    def _impressions(self, call: _Call) -> dict[str, tuple[float, ...]]:
        store = self.backends.impressions
        user_id = call.request.user_id
        if call.impressions is None:
            call.impressions = {} if store is None or not user_id else self._guard(
                call, "impressions", lambda: store.user_impressions(user_id), {})
        return call.impressions

    def _ctr(self, call: _Call, boosts: frozenset[str], shelves: list[ShelfInput], config: BlenderConfig
             ) -> dict[str, tuple[int, int]]:
        """(impressions, clicks) of the boosted items and of the items that can be their visible neighbours."""
        window = config.boost.neighbour_window + len(boosts)
        wanted = sorted({c.item_id for shelf in shelves for c in shelf.items[:window]}
                        | {c.item_id for shelf in shelves for c in shelf.items if c.item_id in boosts})
        store, reader = self.backends.impressions, self.backends.reader
        if store is None or reader is None:
            return {}
        shown = self._guard(call, "impressions", lambda: store.item_counts(wanted), {})
        missing = [item for item in wanted if item not in call.pit_clicks]  # most were read for scoring
        if missing:
            features = self._guard(call, "pit_features", lambda: reader.read("", missing, now=call.now).items, None)
            if features is None:
                return {}
            call.pit_clicks.update(zip(features.item_ids, features.column("item_clicks").tolist()))
        clicks = call.pit_clicks
        return {item: (int(shown.get(item, 0)), int(clicks.get(item, 0))) for item in wanted}

    def _filter(self, request: ApiRequest) -> tuple[Filter | None, bool]:
        """The named filter; kept in process `blender_reload_s`, and beyond that while the store is down (a filter
        never read before cannot be applied then: 503, as serving unfiltered items could show excluded ones)."""
        name = request.filter_name
        if name is None:
            return None, False
        stale = False
        cached = self._filters.get(name)
        if cached is not None and cached[0] > time.monotonic():
            flt = cached[1]
        else:
            try:
                flt = guarded_call(self.backends.breakers.get(REDIS), lambda: self.filters.get(name),
                                   self.backends.store_errors)
            except FilterNotFoundError as exc:
                self._filters.pop(name, None)
                raise RequestRejected(404, [FieldError("filterName", str(exc))]) from None
            except StoreSkipped as exc:
                if cached is None:
                    log.warning("filters: the filter store is unavailable: %r", exc.__cause__ or exc)
                    raise ServiceUnavailable("filters: the filter store is unavailable; retry later") from None
                flt, stale = cached[1], True
            else:
                self._filters[name] = (time.monotonic() + self.config.blender_reload_s, flt)
        missing = flt.missing_parameters(request.filter_values)
        if missing:
            names = ", ".join(f"${name}" for name in missing)
            raise RequestRejected(400, [FieldError("filterValues", f"missing value for {names}")])
        return flt, stale

    def _item(self, call: _Call, item_id: str, score: float, channel: str, position: int,
              rules: Sequence[str]) -> dict[str, Any]:
        score = float(score) if math.isfinite(score) else 0.0  # JSON has no NaN
        return {"itemId": item_id, "score": round(score, 6), "channel": channel, "position": position,
                "rules": list(rules), "recommendationId": call.recommendation_id, "variant": call.variant}

    # --- side effects -------------------------------------------------------------------------------------------
    def _log_exposures(self, call: _Call, shown: list[ShownList]) -> None:
        user_id = call.request.user_id or ""
        events = impression_events(user_id=user_id, session_id=call.request.session_id,
                                   recommendation_id=call.recommendation_id, variant=call.variant,
                                   route=call.request.route, lists=shown, now=call.now, degraded=bool(call.reasons),
                                   latency_ms=call.stats.latency_ms)
        call.stats.exposures = len(events)
        sinks, store = self.backends.sinks, self.backends.impressions
        items = [item for shown_list in shown for item in shown_list.items]

        def write() -> None:
            lost = deliver(sinks, events) if sinks and events else {}
            if lost:
                log.error("recommend: %d impression events not delivered: %s", len(lost), lost)
            if store is not None:
                self._write_store("impressions", lambda: store.record(user_id, items, call.now))

        self.side_effects.submit(write)

    def _write_store(self, part: str, write: Callable[[], None]) -> None:
        """A write off the response path, through the store's breaker; a failure is logged (nothing waits on it)."""
        try:
            guarded_call(self.backends.breakers.get(REDIS), write, self.backends.store_errors)
        except StoreSkipped as exc:
            log.warning("recommend: %s not written: %r", part, exc.__cause__ or exc)

    def _store_snapshot(self, call: _Call, showcase: Showcase, config: BlenderConfig) -> None:
        store = self.backends.snapshots
        if store is None or REDIS in call.down:
            return
        visible = [(shelf.shelf_id, [p.item_id for p in shelf.items[: config.fingerprint.visible_items]])
                   for shelf in showcase.shelves[: config.fingerprint.visible_shelves]]
        snapshot = Snapshot.of(visible, showcase.fingerprint)
        user_id, day = call.request.user_id or "", call.day
        self.side_effects.submit(
            lambda: self._write_store("showcase snapshot", lambda: store.put(user_id, day, snapshot)))


def _shortfall(requested: int, returned: int) -> dict[str, Any]:
    """The flag of a short list: it had fewer items to give than asked for (see the README); none when full."""
    return {} if returned >= requested else {"shortfall": {"requested": requested, "returned": returned}}


def _interleave(lists: list[list[tuple[str, float, str]]]) -> list[tuple[str, float, str]]:
    """Round-robin over the lists, each item once (the first list to offer it keeps it)."""
    seen: set[str] = set()
    merged = []
    for rank in range(max((len(lst) for lst in lists), default=0)):
        for lst in lists:
            if rank < len(lst) and lst[rank][0] not in seen:
                seen.add(lst[rank][0])
                merged.append(lst[rank])
    return merged
