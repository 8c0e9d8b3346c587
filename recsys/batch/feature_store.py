"""Feature Store for the batch features: group definitions from the spec, a local adapter and an AWS adapter.

- `feature_group(entity, names)`: the SageMaker feature group of the user or item batch features, its
  FeatureDefinitions generated from recsys.batch.spec (the CDK stack calls `feature_definitions`).
- `FeatureStore`: ingest(group, records) / get_record(group, id) / batch_get(group, ids).
- `LocalFeatureStore`: the online store in Redis hashes (`fs:<group>:<id>`; a write with an older
  event time than the stored one is ignored, as SageMaker's online store keeps the latest record), and
  the offline store as Parquet in SageMaker's S3 layout
  `<prefix>/<account>/sagemaker/<region>/offline-store/<group>-<created>/data/year=/month=/day=/hour=/`.
  moto has no `sagemaker-featurestore-runtime`; this is the stand-in.
- `SageMakerFeatureStore`: `sagemaker-featurestore-runtime` PutRecord / GetRecord / BatchGetRecord.

Records are dicts of feature name to value; None means "no value" (omitted, as SageMaker does).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import secrets
import string
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

from recsys.batch.spec import ENTITY_KEYS, EVENT_TIME, features_of
from recsys.config import ResourceNames

STORE_ENTITIES = ("user", "item")
FEATURE_TYPES = {"integral": "Integral", "fractional": "Fractional", "string": "String"}
# Columns SageMaker adds to every offline-store row (and forbids as feature names).
OFFLINE_COLUMNS = ("write_time", "api_invocation_time", "is_deleted")
BATCH_GET_LIMIT = 100  # BatchGetRecord: at most 100 identifiers per group and call


class FeatureStoreError(ValueError):
    """A record or request the store cannot take; the message names the group, record and field."""


@dataclass(frozen=True)
class FeatureGroup:
    name: str
    entity: str
    record_identifier: str
    # (feature name, SageMaker FeatureType), identifier and event time included.
    features: tuple[tuple[str, str], ...]
    event_time: str = EVENT_TIME

    @property
    def types(self) -> dict[str, str]:
        return dict(self.features)

    def definitions(self) -> list[dict[str, str]]:
        return [{"FeatureName": name, "FeatureType": kind} for name, kind in self.features]


def feature_definitions(entity: str) -> list[dict[str, str]]:
    """FeatureDefinitions (FeatureName, FeatureType) of the entity's batch feature group, from the spec."""
    if entity not in STORE_ENTITIES:
        raise ValueError(f"entity: {entity!r} has no feature group; expected one of {', '.join(STORE_ENTITIES)}")
    (key,) = ENTITY_KEYS[entity]
    specs = [(f.name, FEATURE_TYPES[f.dtype]) for f in features_of(entity)]
    return [
        {"FeatureName": name, "FeatureType": kind}
        for name, kind in [(key, "String"), *specs, (EVENT_TIME, "Fractional")]
    ]


def feature_group(entity: str, names: ResourceNames) -> FeatureGroup:
    definitions = feature_definitions(entity)
    return FeatureGroup(
        name=names.feature_group(entity),
        entity=entity,
        record_identifier=ENTITY_KEYS[entity][0],
        features=tuple((d["FeatureName"], d["FeatureType"]) for d in definitions),
    )


def feature_groups(names: ResourceNames) -> dict[str, FeatureGroup]:
    """Feature groups by name, for every entity with one."""
    groups = (feature_group(entity, names) for entity in STORE_ENTITIES)
    return {group.name: group for group in groups}


def _encode_value(group: FeatureGroup, record_id: str, name: str, kind: str, value: Any) -> str:
    where = f"{group.name}/{record_id}: {name}"
    if kind == "String":
        if not isinstance(value, str):
            raise FeatureStoreError(f"{where}: expected a string, got {type(value).__name__}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FeatureStoreError(f"{where}: expected a number, got {type(value).__name__}")
    if kind == "Integral":
        if isinstance(value, float) and not value.is_integer():
            raise FeatureStoreError(f"{where}: expected an integer, got {value!r}")
        return str(int(value))
    if not math.isfinite(value):
        raise FeatureStoreError(f"{where}: expected a finite number, got {value!r}")
    return repr(float(value))


def encode_record(group: FeatureGroup, record: Mapping[str, Any]) -> list[dict[str, str]]:
    """The record as SageMaker's Record (FeatureName / ValueAsString pairs), validated against the group."""
    record_id = record.get(group.record_identifier)
    if not isinstance(record_id, str) or not record_id:
        raise FeatureStoreError(f"{group.name}: {group.record_identifier}: required non-empty string")
    if record.get(group.event_time) is None:
        raise FeatureStoreError(f"{group.name}/{record_id}: {group.event_time}: required")
    types = group.types
    unknown = sorted(set(record) - set(types))
    if unknown:
        raise FeatureStoreError(f"{group.name}/{record_id}: {unknown[0]}: not a feature of the group")
    return [
        {"FeatureName": name, "ValueAsString": _encode_value(group, record_id, name, types[name], value)}
        for name, value in record.items()
        if value is not None
    ]


def decode_record(group: FeatureGroup, values: Mapping[str, str]) -> dict[str, Any]:
    """Typed values from ValueAsString strings (features the group does not know are dropped)."""
    types = group.types
    decoded: dict[str, Any] = {}
    for name, text in values.items():
        kind = types.get(name)
        if kind == "Integral":
            decoded[name] = int(text)
        elif kind == "Fractional":
            decoded[name] = float(text)
        elif kind == "String":
            decoded[name] = text
    return decoded


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class FeatureStore(ABC):
    """Online reads and ingestion of feature records, by feature group name."""

    def __init__(self, groups: Mapping[str, FeatureGroup]) -> None:
        self.groups = dict(groups)

    def group(self, name: str) -> FeatureGroup:
        try:
            return self.groups[name]
        except KeyError:
            raise FeatureStoreError(f"feature group {name!r} does not exist") from None

    @abstractmethod
    def ingest(self, group: str, records: Iterable[Mapping[str, Any]]) -> int:
        """Write records (online, and offline where the store keeps history); returns how many."""

    @abstractmethod
    def get_record(self, group: str, record_id: str) -> dict[str, Any] | None:
        """The latest record of `record_id`, or None."""

    @abstractmethod
    def batch_get(self, group: str, record_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The latest records of the ids that have one, by id."""


# Online write that keeps the newest record: ignore a record whose event time is older than the stored one.
_PUT_IF_NEWER = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored and tonumber(stored) > tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
return 1
"""


@dataclass(frozen=True)
class OfflineStoreLocation:
    """Where SageMaker would put a group's offline store: s3://<bucket>/<prefix>/<account>/sagemaker/<region>/..."""

    bucket: str
    prefix: str
    account: str
    region: str

    def table_prefix(self, group: str, created_at: int) -> str:
        return (
            f"{self.prefix.strip('/')}/{self.account}/sagemaker/{self.region}/offline-store/{group}-{created_at}/data"
        )


class LocalFeatureStore(FeatureStore):
    """Online store in Redis (Valkey/MemoryDB), offline store as Parquet in S3 (moto locally)."""

    def __init__(
        self,
        redis_client: Any,
        groups: Mapping[str, FeatureGroup],
        offline: OfflineStoreLocation | None = None,
        *,
        batch_size: int = 200,
        s3_client: Any = None,
    ) -> None:
        super().__init__(groups)
        self.redis = redis_client
        self.offline = offline
        self.batch_size = batch_size
        self._s3 = s3_client
        self._put = redis_client.register_script(_PUT_IF_NEWER)

    @staticmethod
    def key(group: str, record_id: str) -> str:
        return f"fs:{group}:{record_id}"

    @staticmethod
    def _meta_key(group: str) -> str:
        return f"fs-meta:{group}"

    def create_feature_groups(self) -> dict[str, int]:
        """Register every group (idempotent); returns their creation times, which name the offline tables."""
        created: dict[str, int] = {}
        for name, group in self.groups.items():
            self.redis.hsetnx(self._meta_key(name), "created_at", int(time.time()))
            self.redis.hsetnx(self._meta_key(name), "definitions", json.dumps(group.definitions()))
            created[name] = int(self.redis.hget(self._meta_key(name), "created_at"))
        return created

    def _created_at(self, group: FeatureGroup) -> int:
        created = self.redis.hget(self._meta_key(group.name), "created_at")
        if created is None:
            raise FeatureStoreError(f"feature group {group.name!r} does not exist (create_feature_groups first)")
        return int(created)

    def ingest(self, group: str, records: Iterable[Mapping[str, Any]]) -> int:
        definition = self.group(group)
        self._created_at(definition)
        written = 0
        for batch in _batches(records, self.batch_size):
            encoded = [(record, encode_record(definition, record)) for record in batch]
            pipe = self.redis.pipeline(transaction=False)
            for record, values in encoded:
                args = [definition.event_time, str(record[definition.event_time])]
                for pair in values:
                    args += [pair["FeatureName"], pair["ValueAsString"]]
                self._put(keys=[self.key(group, record[definition.record_identifier])], args=args, client=pipe)
            pipe.execute()
            if self.offline is not None:
                self._write_offline(definition, [record for record, _ in encoded])
            written += len(batch)
        return written

    def _write_offline(self, group: FeatureGroup, records: list[Mapping[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from recsys import aws

        arrow_types = {"Integral": pa.int64(), "Fractional": pa.float64(), "String": pa.string()}
        schema = pa.schema(
            [(name, arrow_types[kind]) for name, kind in group.features]
            + [
                ("write_time", pa.timestamp("ms", tz="UTC")),
                ("api_invocation_time", pa.timestamp("ms", tz="UTC")),
                ("is_deleted", pa.bool_()),
            ]
        )
        now = dt.datetime.now(dt.timezone.utc)
        by_hour: dict[dt.datetime, list[Mapping[str, Any]]] = defaultdict(list)
        for record in records:
            event = dt.datetime.fromtimestamp(float(record[group.event_time]), dt.timezone.utc)
            by_hour[event.replace(minute=0, second=0, microsecond=0)].append(record)
        s3 = self._s3 or aws.client("s3")
        table_prefix = self.offline.table_prefix(group.name, self._created_at(group))
        for hour, rows in by_hour.items():
            columns = {name: [row.get(name) for row in rows] for name, _ in group.features}
            columns.update(
                write_time=[now] * len(rows), api_invocation_time=[now] * len(rows), is_deleted=[False] * len(rows)
            )
            buffer = io.BytesIO()
            pq.write_table(pa.table(columns, schema=schema), buffer)
            latest = max(float(row[group.event_time]) for row in rows)
            stamp = dt.datetime.fromtimestamp(latest, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            suffix = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(16))
            key = f"{table_prefix}/year={hour:%Y}/month={hour:%m}/day={hour:%d}/hour={hour:%H}/{stamp}_{suffix}.parquet"
            s3.put_object(Bucket=self.offline.bucket, Key=key, Body=buffer.getvalue())

    def get_record(self, group: str, record_id: str) -> dict[str, Any] | None:
        return self.batch_get(group, [record_id]).get(record_id)

    def batch_get(self, group: str, record_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        definition = self.group(group)
        pipe = self.redis.pipeline(transaction=False)
        for record_id in record_ids:
            pipe.hgetall(self.key(group, record_id))
        found: dict[str, dict[str, Any]] = {}
        for record_id, raw in zip(record_ids, pipe.execute(), strict=True):
            if raw:
                values = {
                    k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                    for k, v in raw.items()
                }
                found[record_id] = decode_record(definition, values)
        return found


class SageMakerFeatureStore(FeatureStore):
    """SageMaker Feature Store through `sagemaker-featurestore-runtime`; the service fills the offline store."""

    def __init__(
        self,
        groups: Mapping[str, FeatureGroup],
        runtime: Any = None,
        *,
        max_workers: int = 8,
        max_batch_attempts: int = 3,
    ) -> None:
        super().__init__(groups)
        if runtime is None:
            from recsys import aws

            runtime = aws.client("sagemaker-featurestore-runtime")
        self.runtime = runtime
        self.max_workers = max_workers
        self.max_batch_attempts = max_batch_attempts

    def ingest(self, group: str, records: Iterable[Mapping[str, Any]]) -> int:
        """PutRecord per record (the API has no batch put), max_workers at a time; raises after trying them all."""
        definition = self.group(group)
        encoded = (encode_record(definition, record) for record in records)
        failures: list[str] = []
        written = 0

        def put(values: list[dict[str, str]]) -> None:
            self.runtime.put_record(FeatureGroupName=definition.name, Record=values)

        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            for batch in _batches(encoded, self.max_workers * 16):
                for values, outcome in zip(batch, pool.map(_capture(put), batch), strict=True):
                    if outcome is None:
                        written += 1
                    else:
                        failures.append(f"{_record_id(definition, values)}: {outcome}")
        if failures:
            raise FeatureStoreError(f"{definition.name}: {len(failures)} record(s) not written; first: {failures[0]}")
        return written

    def get_record(self, group: str, record_id: str) -> dict[str, Any] | None:
        definition = self.group(group)
        response = self.runtime.get_record(FeatureGroupName=definition.name, RecordIdentifierValueAsString=record_id)
        record = response.get("Record")
        return decode_record(definition, _values(record)) if record else None

    def batch_get(self, group: str, record_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        definition = self.group(group)
        found: dict[str, dict[str, Any]] = {}
        for chunk in _batches(dict.fromkeys(record_ids), BATCH_GET_LIMIT):
            pending = chunk
            for _ in range(self.max_batch_attempts):
                response = self.runtime.batch_get_record(
                    Identifiers=[{"FeatureGroupName": definition.name, "RecordIdentifiersValueAsString": pending}]
                )
                for result in response.get("Records", []):
                    found[result["RecordIdentifierValueAsString"]] = decode_record(
                        definition, _values(result["Record"])
                    )
                errors = response.get("Errors", [])
                if errors:
                    first = errors[0]
                    where = f"{definition.name}/{first['RecordIdentifierValueAsString']}"
                    raise FeatureStoreError(f"{where}: {first['ErrorCode']}: {first['ErrorMessage']}")
                pending = [
                    rid
                    for u in response.get("UnprocessedIdentifiers", [])
                    for rid in u["RecordIdentifiersValueAsString"]
                ]
                if not pending:
                    break
            else:
                raise FeatureStoreError(
                    f"{definition.name}: {len(pending)} identifier(s) still unprocessed after retries"
                )
        return found


def _values(record: list[dict[str, str]]) -> dict[str, str]:
    return {value["FeatureName"]: value["ValueAsString"] for value in record if "ValueAsString" in value}


def _record_id(group: FeatureGroup, values: list[dict[str, str]]) -> str:
    return _values(values).get(group.record_identifier, "?")


def _capture(function):
    """`function` returning None on success and the error text on failure, so one bad record stops nothing."""

    def call(argument):
        try:
            function(argument)
        except Exception as exc:  # noqa: BLE001 - reported per record, then raised for the whole ingest
            return str(exc)
        return None

    return call
