"""The blender's runtime configuration: one frozen, validated object, hot-reloadable from SSM/AppConfig.

`BlenderConfig.from_dict` / `from_json` build it from plain data and raise `ConfigError` naming the bad
field by its path (e.g. "not_interested.exclude_after: must be >= demote_after (3), got 2"). Defaults are
in README.md. `HotReloadingConfig` re-reads through a loader callable every `ttl_s` seconds and keeps the
last good config when the new one does not load or validate.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from types import MappingProxyType
from typing import Any


class ConfigError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message

    def under(self, prefix: str) -> ConfigError:
        return ConfigError(f"{prefix}{self.path}", self.message)


def _bounds(minimum: float | None = None, maximum: float | None = None, **extra: Any) -> dict[str, Any]:
    return {"min": minimum, "max": maximum, **extra}


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


class _Section:
    """Validates its fields against their type hints and `_bounds` metadata; `from_dict` builds it from plain data."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for spec in fields(self):  # type: ignore[arg-type]
            value = _check(hints[spec.name], getattr(self, spec.name), spec.name, spec.metadata)
            object.__setattr__(self, spec.name, value)
        self._check()

    def _check(self) -> None:
        """Cross-field rules; raise ConfigError(field, message)."""

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> Any:
        if not isinstance(data, Mapping):
            raise ConfigError(path.rstrip(".") or "config", f"expected an object, got {_describe(data)}")
        known = {spec.name: spec for spec in fields(cls)}  # type: ignore[arg-type]
        for key in data:
            if key not in known:
                raise ConfigError(f"{path}{key}", f"unknown field (known: {', '.join(known)})")
        for name, spec in known.items():
            if name not in data and spec.default is MISSING and spec.default_factory is MISSING:
                raise ConfigError(f"{path}{name}", "required field is missing")
        hints = _hints(cls)
        kwargs = {key: _convert(hints[key], value, f"{path}{key}") for key, value in data.items()}
        try:
            return cls(**kwargs)
        except ConfigError as error:
            raise error.under(path) from None


def _convert(hint: Any, value: Any, path: str) -> Any:
    """Plain data (dicts, lists) into the hinted shape; type and range checks happen in __post_init__."""
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and issubclass(hint, _Section):
        return hint.from_dict(value, path + ".")
    if origin is tuple and isinstance(value, (list, tuple)):
        element = typing.get_args(hint)[0]
        return tuple(_convert(element, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict) and isinstance(value, Mapping):
        element = typing.get_args(hint)[1]
        return {k: _convert(element, v, f"{path}.{k}") for k, v in value.items()}
    return value


def _check(hint: Any, value: Any, path: str, meta: Mapping[str, Any]) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _check(options[0], value, path, meta)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, got {_describe(value)}")
        return value
    if hint is int or hint is float:
        number_types = (int,) if hint is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, number_types) or value != value:
            raise ConfigError(path, f"expected {'an integer' if hint is int else 'a number'}, got {_describe(value)}")
        if meta.get("min") is not None and value < meta["min"]:
            raise ConfigError(path, f"must be >= {meta['min']}, got {value}")
        if meta.get("max") is not None and value > meta["max"]:
            raise ConfigError(path, f"must be <= {meta['max']}, got {value}")
        return float(value) if hint is float else value
    if hint is str:
        if not isinstance(value, str) or (meta.get("nonempty") and not value):
            raise ConfigError(
                path, f"expected a{' non-empty' if meta.get('nonempty') else ''} string, got {_describe(value)}"
            )
        if meta.get("choices") and value not in meta["choices"]:
            raise ConfigError(path, f"expected one of {', '.join(meta['choices'])}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, tuple):
            raise ConfigError(path, f"expected a list, got {_describe(value)}")
        element = typing.get_args(hint)[0]
        return tuple(_check(element, v, f"{path}[{i}]", {"nonempty": True}) for i, v in enumerate(value))
    if origin in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise ConfigError(path, f"expected an object, got {_describe(value)}")
        element = typing.get_args(hint)[1]
        checked = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise ConfigError(path, f"expected non-empty string keys, got {key!r}")
            checked[key] = _check(element, item, f"{path}.{key}", {})
        return MappingProxyType(checked)
    if isinstance(hint, type):
        if not isinstance(value, hint):
            raise ConfigError(path, f"expected {hint.__name__}, got {_describe(value)}")
        return value
    raise TypeError(f"unsupported config type {hint!r} at {path}")  # a programming error in this module


@dataclass(frozen=True)
class BoostConfig(_Section):
    enabled: bool = True
    # Boost is switched off when neighbours' CTR > ratio x the boosted item's CTR.
    ctr_ratio_threshold: float = field(default=2.0, metadata=_bounds(1.0))
    min_impressions: int = field(default=200, metadata=_bounds(0))  # for both sides before CTR is trusted
    neighbour_window: int = field(default=4, metadata=_bounds(1))  # visible neighbours compared
    max_per_shelf: int = field(default=1, metadata=_bounds(0))
    max_per_page: int = field(default=3, metadata=_bounds(0))


AUDIENCES = ("any", "anonymous", "signed_in")


@dataclass(frozen=True)
class PlacementOverride(_Section):
    """A/B placement: in `arm`, put `shelf_id` at 1-based `position` (e.g. promo first for anonymous web users)."""

    arm: str = field(metadata={"nonempty": True})
    shelf_id: str = field(metadata={"nonempty": True})
    position: int = field(metadata=_bounds(1))
    platforms: tuple[str, ...] = ()  # empty: every platform
    audience: str = field(default="any", metadata={"choices": AUDIENCES})


@dataclass(frozen=True)
class PlacementConfig(_Section):
    # platform -> shelf ids top to bottom (from CMS records, see layouts_from_cms); "default" for other platforms.
    layouts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    overrides: tuple[PlacementOverride, ...] = ()

    def _check(self) -> None:
        for platform, shelf_ids in self.layouts.items():
            if len(set(shelf_ids)) != len(shelf_ids):
                raise ConfigError(f"layouts.{platform}", "lists a shelf twice")


@dataclass(frozen=True)
class DedupConfig(_Section):
    top_n: int = field(default=5, metadata=_bounds(0))  # 0 switches cross-shelf dedup off
    exempt_kinds: tuple[str, ...] = ()  # shelf kinds that neither claim nor lose items


@dataclass(frozen=True)
class WatchedConfig(_Section):
    enabled: bool = True
    watched_threshold: float = field(default=0.9, metadata=_bounds(0.0, 1.0))  # progress >= this: watched
    min_progress: float = field(default=0.05, metadata=_bounds(0.0, 1.0))  # below: not started
    continue_watching_shelf: str = field(default="continue_watching", metadata={"nonempty": True})
    continue_watching_max: int = field(default=20, metadata=_bounds(0))
    adult_age: int = field(default=18, metadata=_bounds(0))  # animated series stay for viewers younger than this

    def _check(self) -> None:
        if self.min_progress >= self.watched_threshold:
            raise ConfigError(
                "min_progress", f"must be < watched_threshold ({self.watched_threshold}), got {self.min_progress}"
            )


@dataclass(frozen=True)
class SpacingConfig(_Section):
    # Same-franchise items have at least `coefficient` other items between them; 0 switches spacing off.
    coefficient: int = field(default=1, metadata=_bounds(0, 50))


@dataclass(frozen=True)
class QuotaConfig(_Section):
    """Paid content limits; None means no limit. Shares are of the items actually shown."""

    max_paid_per_shelf: int | None = field(default=None, metadata=_bounds(0))
    max_paid_share_per_shelf: float | None = field(default=None, metadata=_bounds(0.0, 1.0))
    max_paid_per_page: int | None = field(default=None, metadata=_bounds(0))
    max_paid_share_per_page: float | None = field(default=None, metadata=_bounds(0.0, 1.0))


@dataclass(frozen=True)
class NotInterestedConfig(_Section):
    enabled: bool = True
    demote_after: int = field(default=3, metadata=_bounds(1))  # N unclicked impressions in a streak: demoted
    exclude_after: int = field(default=6, metadata=_bounds(1))  # M: excluded
    cooloff_s: float = field(default=7 * 86400.0, metadata=_bounds(1.0))  # a gap this long ends the streak

    def _check(self) -> None:
        if self.exclude_after < self.demote_after:
            raise ConfigError(
                "exclude_after", f"must be >= demote_after ({self.demote_after}), got {self.exclude_after}"
            )


@dataclass(frozen=True)
class ShelvesConfig(_Section):
    max_items: int = field(default=20, metadata=_bounds(1))
    min_items: int = field(default=1, metadata=_bounds(1))  # a shelf with fewer items after the rules is hidden
    shuffled: tuple[str, ...] = ()  # shelves whose order is a daily-stable shuffle instead of by score


@dataclass(frozen=True)
class FingerprintConfig(_Section):
    visible_shelves: int = field(default=4, metadata=_bounds(1))
    visible_items: int = field(default=6, metadata=_bounds(1))


@dataclass(frozen=True)
class BlenderConfig(_Section):
    boost: BoostConfig = field(default_factory=BoostConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    watched: WatchedConfig = field(default_factory=WatchedConfig)
    spacing: SpacingConfig = field(default_factory=SpacingConfig)
    quota: QuotaConfig = field(default_factory=QuotaConfig)
    not_interested: NotInterestedConfig = field(default_factory=NotInterestedConfig)
    shelves: ShelvesConfig = field(default_factory=ShelvesConfig)
    fingerprint: FingerprintConfig = field(default_factory=FingerprintConfig)

    def to_json(self) -> str:
        """The document `from_json` reads back equal (what the SSM rules parameter holds)."""
        return json.dumps(_plain(self), sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str | bytes) -> BlenderConfig:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ConfigError("config", f"invalid JSON: {error}") from None
        return cls.from_dict(data)


DEFAULT_CONFIG = BlenderConfig()


def _plain(value: Any) -> Any:
    """A config section as JSON-ready data (tuples and read-only mappings included)."""
    if dataclasses.is_dataclass(value):
        return {spec.name: _plain(getattr(value, spec.name)) for spec in dataclasses.fields(value)}
    if hasattr(value, "items"):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (tuple, list, set, frozenset)):
        return [_plain(item) for item in value]
    return value


def layouts_from_cms(records: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Per-platform shelf order from CMS rows {"platform", "shelf_id", "position", "enabled"?}."""
    placed: dict[str, list[tuple[int, str]]] = {}
    for index, record in enumerate(records):
        path = f"records[{index}]"
        if not isinstance(record, Mapping):
            raise ConfigError(path, f"expected an object, got {_describe(record)}")
        for name in ("platform", "shelf_id"):
            if not isinstance(record.get(name), str) or not record[name]:
                raise ConfigError(f"{path}.{name}", f"expected a non-empty string, got {_describe(record.get(name))}")
        position = record.get("position")
        if isinstance(position, bool) or not isinstance(position, int) or position < 1:
            raise ConfigError(f"{path}.position", f"expected an integer >= 1, got {_describe(position)}")
        enabled = record.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{path}.enabled", f"expected true or false, got {_describe(enabled)}")
        if not enabled:
            continue
        shelves = placed.setdefault(record["platform"], [])
        if any(shelf_id == record["shelf_id"] for _, shelf_id in shelves):
            raise ConfigError(f"{path}.shelf_id", f"{record['shelf_id']!r} is placed twice on {record['platform']!r}")
        shelves.append((position, record["shelf_id"]))
    return {platform: tuple(s for _, s in sorted(rows)) for platform, rows in placed.items()}


class HotReloadingConfig:
    """The current BlenderConfig, re-read through `loader` (JSON text or a dict) at most every `ttl_s` seconds.

    A loader error or an invalid config keeps the last good one; `last_error` and `failures` say why, for a
    metric/alarm. Before the first successful load the `initial` config (defaults) is served.
    """

    def __init__(
        self,
        loader: Callable[[], str | bytes | Mapping[str, Any]],
        ttl_s: float = 30.0,
        *,
        initial: BlenderConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s < 0:
            raise ValueError(f"ttl_s: must be >= 0, got {ttl_s}")
        self._loader = loader
        self._ttl_s = ttl_s
        self._clock = clock
        self._config = initial if initial is not None else DEFAULT_CONFIG
        self._next_load_at = float("-inf")
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.failures = 0
        self.loaded_at: float | None = None

    def get(self) -> BlenderConfig:
        now = self._clock()
        if now < self._next_load_at:
            return self._config
        with self._lock:
            if now >= self._next_load_at:
                self._next_load_at = now + self._ttl_s
                self._reload(now)
            return self._config

    def _reload(self, now: float) -> None:
        try:
            raw = self._loader()
            config = BlenderConfig.from_json(raw) if isinstance(raw, (str, bytes)) else BlenderConfig.from_dict(raw)
        except Exception as error:  # noqa: BLE001 - any failure keeps the last good config; it is reported, not raised
            self.failures += 1
            self.last_error = f"{type(error).__name__}: {error}"
            return
        self._config = config
        self.loaded_at = now
        self.last_error = None
