"""In-memory training data for the candidate models: an item catalog and an encoded interaction log.

Both are built from Personalize-format frames (interactions: USER_ID, ITEM_ID, TIMESTAMP, optional EVENT_TYPE and
EVENT_VALUE; items: ITEM_ID, optional CREATION_TIMESTAMP and categorical fields whose multiple values are joined
with "|"). Items are addressed by a dense index; ids are strings everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

# Item columns read as the topic (Amp: topic; Meesho: category; KION/MovieTweetings: genre) and as the creator
# (Amp: creator; Meesho: brand/seller; KION: director/studio), first match wins; override with CatalogFields.
TOPIC_FIELD_CANDIDATES = ("TOPIC", "TOPICS", "GENRES", "GENRE", "CATEGORY", "CATEGORY_L1", "CATEGORIES")
CREATOR_FIELD_CANDIDATES = ("CREATOR", "CREATOR_ID", "BRAND", "SELLER", "STUDIO", "DIRECTOR", "DIRECTORS")
# Extra metadata sets for the Jaccard similarity (KION: keywords, actors, directors, country).
TAG_FIELD_CANDIDATES = ("KEYWORDS", "ACTORS", "DIRECTORS", "DIRECTOR", "COUNTRY", "COUNTRIES", "FRANCHISE", "LANGUAGE")
MULTI_VALUE_SEPARATOR = "|"


class DataError(ValueError):
    """Input data cannot be used; the message names the column."""


@dataclass(frozen=True)
class CatalogFields:
    """Which item columns hold the topic, the creator and further metadata sets (None: detect)."""

    topic: str | None = None
    creator: str | None = None
    tags: tuple[str, ...] | None = None

    def resolve(self, columns: Iterable[str]) -> tuple[str | None, str | None, tuple[str, ...]]:
        present = {c.upper(): c for c in columns}

        def pick(explicit: str | None, candidates: Sequence[str]) -> str | None:
            if explicit is not None:
                if explicit.upper() not in present:
                    raise DataError(f"items: column {explicit} not found")
                return present[explicit.upper()]
            return next((present[c] for c in candidates if c in present), None)

        topic = pick(self.topic, TOPIC_FIELD_CANDIDATES)
        creator = pick(self.creator, CREATOR_FIELD_CANDIDATES)
        if self.tags is None:
            tags = tuple(present[c] for c in TAG_FIELD_CANDIDATES if c in present)
        else:
            tags = tuple(pick(t, ()) or t for t in self.tags)
        return topic, creator, tuple(t for t in tags if t not in (topic, creator))


def _split_values(value: object) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return [v.strip() for v in str(value).split(MULTI_VALUE_SEPARATOR) if v.strip()]


def _binary_csr(rows: Sequence[Sequence[str]], vocabulary: dict[str, int]) -> sp.csr_matrix:
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indices: list[int] = []
    for r, values in enumerate(rows):
        cols = sorted({vocabulary.setdefault(v, len(vocabulary)) for v in values})
        indices.extend(cols)
        indptr[r + 1] = len(indices)
    data = np.ones(len(indices), dtype=np.float32)
    shape = (len(rows), max(len(vocabulary), 1))
    return sp.csr_matrix((data, np.asarray(indices, dtype=np.int32), indptr), shape=shape)


@dataclass
class Catalog:
    """Items by dense index: ids, creation time, topic/creator/tag memberships."""

    item_ids: np.ndarray  # str, shape (n,)
    created: np.ndarray  # float64 unix seconds, NaN when unknown
    topics: sp.csr_matrix  # (n, n_topics) binary
    topic_names: np.ndarray
    creators: np.ndarray  # int32 index into creator_names, -1 when unknown
    creator_names: np.ndarray
    tags: sp.csr_matrix  # (n, n_tags) binary: topics, creator and metadata sets, as "FIELD=value"
    tag_names: np.ndarray
    _index: dict[str, int] = field(default_factory=dict, repr=False)
    _tag_groups: tuple[np.ndarray, sp.csr_matrix] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._index = {item: i for i, item in enumerate(self.item_ids.tolist())}

    @property
    def tag_groups(self) -> tuple[np.ndarray, sp.csr_matrix]:
        """Items grouped by identical tag sets: (group of each item, groups × tags binary matrix).

        Items with the same metadata have the same Jaccard to anything, so similarity is computed per group
        (MovieTweetings: ~10k items, far fewer genre combinations).
        """
        if self._tag_groups is None:
            keys = [self.tags.indices[self.tags.indptr[i]:self.tags.indptr[i + 1]].tobytes() for i in range(len(self))]
            unique: dict[bytes, int] = {}
            group = np.fromiter((unique.setdefault(k, len(unique)) for k in keys), np.int64, count=len(keys))
            first = np.zeros(len(unique), np.int64)
            first[group[::-1]] = np.arange(len(group))[::-1]
            self._tag_groups = (group, self.tags[first])
        return self._tag_groups

    def __len__(self) -> int:
        return len(self.item_ids)

    def index_of(self, item_id: str) -> int:
        """The dense index of an item, or -1 if unknown."""
        return self._index.get(item_id, -1)

    def indices(self, item_ids: Iterable[str]) -> np.ndarray:
        """Dense indices (-1 for unknown ids) of many items."""
        get = self._index.get
        return np.fromiter((get(i, -1) for i in item_ids), dtype=np.int64)

    def ids(self, indices: np.ndarray) -> list[str]:
        return self.item_ids[indices].tolist()

    @classmethod
    def from_frame(
        cls, items: pd.DataFrame | None, extra_item_ids: Iterable[str] = (), fields: CatalogFields = CatalogFields()
    ) -> "Catalog":
        """A catalog from an items frame, plus items only seen in interactions (with no metadata)."""
        if items is None:
            items = pd.DataFrame({"ITEM_ID": pd.Series([], dtype=str)})
        if "ITEM_ID" not in items.columns:
            raise DataError("items: column ITEM_ID is required")
        items = items.drop_duplicates("ITEM_ID", keep="last")
        known = items["ITEM_ID"].astype(str).tolist()
        seen = set(known)
        extra = sorted({str(i) for i in extra_item_ids} - seen)
        item_ids = np.asarray(known + extra, dtype=str)
        n_extra = len(extra)
        created = np.full(len(item_ids), np.nan)
        if "CREATION_TIMESTAMP" in items.columns:
            created[: len(known)] = pd.to_numeric(items["CREATION_TIMESTAMP"], errors="coerce").to_numpy(float)
        topic_col, creator_col, tag_cols = fields.resolve(items.columns)

        def column_values(col: str | None) -> list[list[str]]:
            if col is None:
                return [[] for _ in item_ids]
            return [_split_values(v) for v in items[col].tolist()] + [[] for _ in range(n_extra)]

        topic_rows = column_values(topic_col)
        topic_vocab: dict[str, int] = {}
        topics = _binary_csr(topic_rows, topic_vocab)
        creator_rows = column_values(creator_col)
        creator_vocab: dict[str, int] = {}
        creators = np.array([creator_vocab.setdefault(r[0], len(creator_vocab)) if r else -1 for r in creator_rows],
                            dtype=np.int32)
        tag_rows: list[list[str]] = [[] for _ in item_ids]
        fields_rows = [(topic_col, topic_rows), (creator_col, creator_rows)] + [(c, column_values(c)) for c in tag_cols]
        for col, rows in fields_rows:
            if col is None:
                continue
            for r, values in enumerate(rows):
                tag_rows[r].extend(f"{col.upper()}={v}" for v in values)
        tag_vocab: dict[str, int] = {}
        tags = _binary_csr(tag_rows, tag_vocab)
        return cls(
            item_ids=item_ids,
            created=created,
            topics=topics,
            topic_names=np.asarray(list(topic_vocab), dtype=str),
            creators=creators,
            creator_names=np.asarray(list(creator_vocab), dtype=str),
            tags=tags,
            tag_names=np.asarray(list(tag_vocab), dtype=str),
        )

    # Persistence: one .npz, no pickles.
    def save(self, path: Path) -> None:
        np.savez(
            path,
            item_ids=self.item_ids,
            created=self.created,
            topics_indptr=self.topics.indptr,
            topics_indices=self.topics.indices,
            n_topics=np.int64(self.topics.shape[1]),
            topic_names=self.topic_names,
            creators=self.creators,
            creator_names=self.creator_names,
            tags_indptr=self.tags.indptr,
            tags_indices=self.tags.indices,
            n_tags=np.int64(self.tags.shape[1]),
            tag_names=self.tag_names,
        )

    @classmethod
    def load(cls, path: Path) -> "Catalog":
        with np.load(path, allow_pickle=False) as z:
            n = len(z["item_ids"])

            def csr(prefix: str, width: int) -> sp.csr_matrix:
                indices = z[f"{prefix}_indices"]
                data = np.ones(len(indices), np.float32)
                return sp.csr_matrix((data, indices, z[f"{prefix}_indptr"]), shape=(n, width))

            return cls(
                item_ids=z["item_ids"],
                created=z["created"],
                topics=csr("topics", int(z["n_topics"])),
                topic_names=z["topic_names"],
                creators=z["creators"],
                creator_names=z["creator_names"],
                tags=csr("tags", int(z["n_tags"])),
                tag_names=z["tag_names"],
            )


@dataclass(frozen=True)
class SignalConfig:
    """Which interactions count as positive signal for the candidate models, and how much.

    `event_weights`: weight per EVENT_TYPE (types not listed get `default_weight`; 0 drops them).
    `min_value`: rows whose EVENT_VALUE is below it are dropped (Personalize's training threshold), NaN kept.
    """

    event_weights: Mapping[str, float] = field(default_factory=lambda: {"impression": 0.0})
    default_weight: float = 1.0
    min_value: float | None = None


@dataclass
class Interactions:
    """An encoded interaction log, sorted by time."""

    user_ids: np.ndarray  # str vocabulary
    user: np.ndarray  # int32 index into user_ids
    item: np.ndarray  # int32 catalog index
    timestamp: np.ndarray  # float64 unix seconds
    value: np.ndarray  # float32 EVENT_VALUE, NaN when absent
    event_type: np.ndarray  # str
    weight: np.ndarray  # float32 signal weight (0: not a positive signal)

    def __len__(self) -> int:
        return len(self.item)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, catalog: Catalog, signal: SignalConfig = SignalConfig()) -> "Interactions":
        for column in ("USER_ID", "ITEM_ID", "TIMESTAMP"):
            if column not in frame.columns:
                raise DataError(f"interactions: column {column} is required")
        timestamp = pd.to_numeric(frame["TIMESTAMP"], errors="coerce").to_numpy(float)
        if np.isnan(timestamp).any():
            row = int(np.flatnonzero(np.isnan(timestamp))[0])
            raise DataError(f"interactions: TIMESTAMP is not a number in row {row}")
        item = catalog.indices(frame["ITEM_ID"].astype(str))
        if (item < 0).any():
            missing = frame["ITEM_ID"].astype(str).to_numpy()[item < 0][0]
            raise DataError(f"interactions: ITEM_ID {missing} is not in the catalog")
        users, user = np.unique(frame["USER_ID"].astype(str).to_numpy(), return_inverse=True)
        if "EVENT_VALUE" in frame.columns:
            value = pd.to_numeric(frame["EVENT_VALUE"], errors="coerce").to_numpy(np.float32)
        else:
            value = np.full(len(frame), np.nan, np.float32)
        if "EVENT_TYPE" in frame.columns:
            event_type = frame["EVENT_TYPE"].fillna("").astype(str).to_numpy()
        else:
            event_type = np.full(len(frame), "", dtype=object)
        weight = np.full(len(frame), signal.default_weight, np.float32)
        for name, w in signal.event_weights.items():
            weight[event_type == name] = w
        if signal.min_value is not None:
            weight[value < signal.min_value] = 0.0
        order = np.argsort(timestamp, kind="stable")
        return cls(
            user_ids=users.astype(str),
            user=user.astype(np.int32)[order],
            item=item.astype(np.int32)[order],
            timestamp=timestamp[order],
            value=value[order],
            event_type=np.asarray(event_type, dtype=str)[order],
            weight=weight[order],
        )

    def select(self, mask: np.ndarray) -> "Interactions":
        return Interactions(self.user_ids, self.user[mask], self.item[mask], self.timestamp[mask], self.value[mask],
                            self.event_type[mask], self.weight[mask])

    def before(self, cutoff: float) -> "Interactions":
        return self.select(self.timestamp < cutoff)

    def between(self, start: float, end: float) -> "Interactions":
        return self.select((self.timestamp >= start) & (self.timestamp < end))

    def positives(self) -> "Interactions":
        return self.select(self.weight > 0)

    def user_item_matrix(self, n_items: int) -> sp.csr_matrix:
        """Users × items holding the largest signal weight of each pair (a repeat is not a stronger signal)."""
        pos = np.flatnonzero(self.weight > 0)
        key = self.user[pos].astype(np.int64) * n_items + self.item[pos]
        order = np.lexsort((self.weight[pos], key))
        last = np.r_[key[order][1:] != key[order][:-1], True]
        keep = pos[order[last]]
        return sp.csr_matrix((self.weight[keep], (self.user[keep], self.item[keep])), shape=(self.n_users, n_items))

    def histories(self, max_items: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per user: their last `max_items` distinct positive items, each at its latest time, oldest first.

        The same list the real-time features keep (recsys.features: `user_recent_items`), so a history built here
        at time T equals the one the recommend API reads at T.
        """
        pos = np.flatnonzero(self.weight > 0)
        # Latest event per (user, item): sort by (user, item, time), keep each pair's last row.
        order = pos[np.lexsort((self.timestamp[pos], self.item[pos], self.user[pos]))]
        pair = self.user[order].astype(np.int64) * (int(self.item.max(initial=0)) + 1) + self.item[order]
        latest = order[np.r_[pair[1:] != pair[:-1], True]]
        latest = latest[np.lexsort((self.item[latest], self.timestamp[latest], self.user[latest]))]
        users = self.user[latest]
        bounds = np.flatnonzero(np.diff(users)) + 1
        result: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for chunk in np.split(latest, bounds):
            if len(chunk):
                chunk = chunk[-max_items:]
                result[int(self.user[chunk[0]])] = (self.item[chunk], self.timestamp[chunk])
        return result
