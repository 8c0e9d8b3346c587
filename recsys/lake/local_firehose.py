"""In-process stand-in for the lake's delivery stream: moto's Firehose runs neither the transform Lambda nor dynamic
partitioning, so the local platform uses this one (see recsys/lake/README.md).

It answers `put_record` / `put_record_batch` as boto3's Firehose client does (same arguments, same response
shapes, service errors as botocore ClientErrors), so the tracker's real `FirehoseSender` sends to it unchanged. Then,
as the deployed stream (stacks/constructs/firehose_to_lake.py) does:

1. incoming records wait in the processor buffer until `processor_buffer_bytes` or `processor_interval_s`;
2. the transform (recsys.lake.transform, the Lambda's code) gets them in Firehose's invocation event, and its
   answer is checked record by record: `Ok` goes on with its `event_date` partition key, `Dropped` is discarded,
   `ProcessingFailed` (or an answer that breaks the contract, or an invocation that fails every retry) becomes an
   error document;
3. each S3 prefix (the event-date partition, or the error prefix) has its own buffer, written as one gzip JSON-lines
   object when it holds `buffer_bytes` or is `buffer_interval_s` old, at the keys recsys.lake.delivery evaluates.

`flush()` delivers everything now; `close()` (or leaving the `with` block) stops the timer thread and flushes.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from recsys import aws
from recsys.config import LOCAL_ACCOUNT, StageConfig
from recsys.lake.delivery import (
    ERRORS_S3_PREFIX,
    EVENTS_S3_PREFIX,
    PROCESSING_FAILED,
    PrefixError,
    object_name,
    render_prefix,
)
from recsys.lake.transform import DROPPED, FAILED, OK, transform_records

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
# PutRecordBatch limits of the service.
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * MIB
MAX_RECORD_BYTES = 1000 * 1024

# errorCode of the error documents: Firehose's for function errors and failed records; the stand-in names the
# contract breaches it detects the same way.
FUNCTION_ERROR = "Lambda.FunctionError"
RECORD_FAILED = "Lambda.ProcessingFailed"
CONTRACT_BROKEN = "Lambda.InvalidResponse"

Transform = Callable[[dict[str, Any]], dict[str, Any]]


def transform_lambda(event: dict[str, Any]) -> dict[str, Any]:
    """What the transform Lambda answers (lambdas/firehose_transform, without its logs and metrics)."""
    return transform_records(event["records"]).response()


@dataclass
class _Record:
    record_id: str
    data: bytes
    arrival: float


@dataclass
class _Buffer:
    created: float
    errors: bool
    lines: list[bytes] = field(default_factory=list)
    size: int = 0


@dataclass(frozen=True)
class DeliveryStats:
    """Records by outcome (received = ok + dropped + failed once flushed) and objects written."""

    received: int = 0
    ok: int = 0
    dropped: int = 0
    failed: int = 0
    invocations: int = 0
    objects: int = 0
    error_objects: int = 0


def _service_error(operation: str, code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class LocalFirehose:
    """One DirectPut delivery stream with a transform Lambda and dynamic partitioning, writing to `bucket`."""

    def __init__(
        self,
        stream_name: str,
        bucket: str,
        *,
        buffer_bytes: int,
        buffer_interval_s: float,
        processor_buffer_bytes: int,
        processor_interval_s: float,
        processor_retries: int = 3,
        transform: Transform = transform_lambda,
        function_arn: str = "",
        region: str = "us-east-1",
        account: str = LOCAL_ACCOUNT,
        s3: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stream_name = stream_name
        self.bucket = bucket
        self.buffer_bytes = buffer_bytes
        self.buffer_interval_s = buffer_interval_s
        self.processor_buffer_bytes = processor_buffer_bytes
        self.processor_interval_s = processor_interval_s
        self.processor_retries = processor_retries
        self.transform = transform
        self.stream_arn = f"arn:aws:firehose:{region}:{account}:deliverystream/{stream_name}"
        self.function_arn = function_arn
        self.region = region
        self.s3 = s3 or aws.client("s3")
        self.clock = clock
        self._lock = threading.RLock()
        self._incoming: list[_Record] = []
        self._incoming_bytes = 0
        self._buffers: dict[str, _Buffer] = {}
        self._counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_stage(cls, config: StageConfig, bucket: str, **overrides: Any) -> "LocalFirehose":
        """The stream of `config` (name, buffering hints, retries) into `bucket`; `overrides` replace settings."""
        settings = config.firehose
        names = config.names
        arguments: dict[str, Any] = dict(
            buffer_bytes=settings.buffer_size_mb * MIB,
            buffer_interval_s=settings.buffer_interval_s,
            processor_buffer_bytes=int(settings.processor_buffer_size_mb * MIB),
            processor_interval_s=settings.processor_buffer_interval_s,
            processor_retries=settings.processor_retries,
            region=config.region,
            function_arn=f"arn:aws:lambda:{config.region}:{LOCAL_ACCOUNT}:function:"
            + names.function("firehose_transform"),
        )
        return cls(names.firehose_stream, bucket, **{**arguments, **overrides})

    # --- the Firehose API (boto3 shapes) ------------------------------------------------------------------------

    def put_record_batch(self, *, DeliveryStreamName: str, Records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        self._check_stream("PutRecordBatch", DeliveryStreamName)
        payloads = [self._payload("PutRecordBatch", record) for record in Records]
        if not 1 <= len(payloads) <= MAX_BATCH_RECORDS:
            raise _service_error(
                "PutRecordBatch", "InvalidArgumentException", f"Records: 1..{MAX_BATCH_RECORDS}, got {len(payloads)}"
            )
        if sum(map(len, payloads)) > MAX_BATCH_BYTES:
            raise _service_error("PutRecordBatch", "InvalidArgumentException", "Records: more than 4 MiB in one call")
        now = self.clock()
        ids = [uuid.uuid4().hex for _ in payloads]
        with self._lock:
            for record_id, payload in zip(ids, payloads):
                self._incoming.append(_Record(record_id, payload, now))
                self._incoming_bytes += len(payload)
            self._counts["received"] += len(payloads)
            full = self._incoming_bytes >= self.processor_buffer_bytes
        if full and self._thread is not None:
            self._wake.set()  # delivery is asynchronous, as Firehose's: the caller does not wait for the transform
        elif full:
            self.tick()
        return {"FailedPutCount": 0, "Encrypted": True, "RequestResponses": [{"RecordId": i} for i in ids]}

    def put_record(self, *, DeliveryStreamName: str, Record: Mapping[str, Any]) -> dict[str, Any]:
        response = self.put_record_batch(DeliveryStreamName=DeliveryStreamName, Records=[Record])
        return {"RecordId": response["RequestResponses"][0]["RecordId"], "Encrypted": True}

    def _check_stream(self, operation: str, name: str) -> None:
        if name != self.stream_name:
            raise _service_error(operation, "ResourceNotFoundException", f"Firehose {name} not found.")

    @staticmethod
    def _payload(operation: str, record: Mapping[str, Any]) -> bytes:
        data = record.get("Data")
        if isinstance(data, str):
            data = data.encode()
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise _service_error(operation, "InvalidArgumentException", "Record.Data: required non-empty bytes")
        if len(data) > MAX_RECORD_BYTES:
            raise _service_error(operation, "InvalidArgumentException", "Record.Data: larger than 1000 KiB")
        return bytes(data)

    # --- buffering and delivery -------------------------------------------------------------------------------

    @property
    def stats(self) -> DeliveryStats:
        with self._lock:
            return DeliveryStats(**self._counts)

    def tick(self) -> None:
        """Run the transform and write the buffers that are full or old enough (the timer thread calls this)."""
        now = self.clock()
        with self._lock:
            if self._incoming and (
                self._incoming_bytes >= self.processor_buffer_bytes
                or now - self._incoming[0].arrival >= self.processor_interval_s
            ):
                self._process()
            self._deliver(now, force=False)

    def flush(self) -> None:
        """Transform and write everything buffered now; raises if S3 refuses a write (the data stays buffered)."""
        with self._lock:
            self._process()
            self._deliver(self.clock(), force=True)

    def start(self) -> "LocalFirehose":
        if self._thread is None:
            self._stop.clear()
            period = max(0.05, min(1.0, self.buffer_interval_s / 4, self.processor_interval_s / 4))
            self._thread = threading.Thread(target=self._run, args=(period,), name="local-firehose", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the timer thread and deliver what is buffered."""
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join()
            self._thread = None
        self.flush()

    def __enter__(self) -> "LocalFirehose":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _run(self, period: float) -> None:
        while True:
            self._wake.wait(period)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.tick()
            except (ClientError, BotoCoreError) as exc:  # S3 unavailable: the buffers stay, the next tick retries
                logger.warning("local firehose %s: delivery failed, will retry: %s", self.stream_name, exc)

    def _process(self) -> None:
        """Hand the incoming records to the transform, in invocations of at most processor_buffer_bytes."""
        batch: list[_Record] = []
        size = 0
        for record in self._incoming:
            if batch and size + len(record.data) > self.processor_buffer_bytes:
                self._invoke(batch)
                batch, size = [], 0
            batch.append(record)
            size += len(record.data)
        if batch:
            self._invoke(batch)
        self._incoming, self._incoming_bytes = [], 0

    def _invoke(self, batch: list[_Record]) -> None:
        event = {
            "invocationId": str(uuid.uuid4()),
            "deliveryStreamArn": self.stream_arn,
            "region": self.region,
            "records": [
                {
                    "recordId": record.record_id,
                    "approximateArrivalTimestamp": int(record.arrival * 1000),
                    "data": base64.b64encode(record.data).decode(),
                }
                for record in batch
            ],
        }
        attempts = 0
        while True:
            attempts += 1
            self._counts["invocations"] += 1
            try:
                response = self.transform(event)
                break
            except Exception as exc:  # noqa: BLE001 - any function error: Firehose retries, then fails the batch
                if attempts > self.processor_retries:
                    for record in batch:
                        self._fail(record, FUNCTION_ERROR, f"{type(exc).__name__}: {exc}", attempts)
                    return
        answers: dict[str, Mapping[str, Any]] = {}
        for answer in response.get("records", []) if isinstance(response, Mapping) else []:
            if isinstance(answer, Mapping) and isinstance(answer.get("recordId"), str):
                answers.setdefault(answer["recordId"], answer)
        for record in batch:
            self._apply(record, answers.get(record.record_id), attempts)

    def _apply(self, record: _Record, answer: Mapping[str, Any] | None, attempts: int) -> None:
        if answer is None:
            self._fail(record, CONTRACT_BROKEN, "the transform's answer has no entry for this recordId", attempts)
            return
        result = answer.get("result")
        if result == DROPPED:
            self._counts["dropped"] += 1
            return
        if result == FAILED:
            self._fail(record, RECORD_FAILED, "the transform marked the record ProcessingFailed", attempts)
            return
        if result != OK:
            self._fail(record, CONTRACT_BROKEN, f"result: {result!r} is not Ok, Dropped or ProcessingFailed", attempts)
            return
        try:
            data = base64.b64decode(answer.get("data", ""), validate=True)
            keys = (answer.get("metadata") or {}).get("partitionKeys") or {}
            prefix = render_prefix(EVENTS_S3_PREFIX, arrival=record.arrival, partition_keys=keys)
        except (binascii.Error, TypeError, AttributeError, PrefixError) as exc:
            self._fail(record, CONTRACT_BROKEN, f"Ok answer unusable: {exc}", attempts)
            return
        self._buffer(prefix, data, errors=False)
        self._counts["ok"] += 1

    def _fail(self, record: _Record, code: str, message: str, attempts: int) -> None:
        document = {
            "attemptsMade": attempts,
            "arrivalTimestamp": int(record.arrival * 1000),
            "errorCode": code,
            "errorMessage": message,
            "attemptEndingTimestamp": int(self.clock() * 1000),
            "rawData": base64.b64encode(record.data).decode(),
            "lambdaArn": self.function_arn,
        }
        prefix = render_prefix(ERRORS_S3_PREFIX, arrival=record.arrival, error_output_type=PROCESSING_FAILED)
        self._buffer(prefix, (json.dumps(document, separators=(",", ":")) + "\n").encode(), errors=True)
        self._counts["failed"] += 1

    def _buffer(self, prefix: str, line: bytes, *, errors: bool) -> None:
        buffer = self._buffers.get(prefix)
        if buffer is None:
            buffer = self._buffers[prefix] = _Buffer(created=self.clock(), errors=errors)
        buffer.lines.append(line)
        buffer.size += len(line)

    def _deliver(self, now: float, *, force: bool) -> None:
        for prefix, buffer in list(self._buffers.items()):
            if force or buffer.size >= self.buffer_bytes or now - buffer.created >= self.buffer_interval_s:
                key = prefix + object_name(self.stream_name, buffer.created, uuid.uuid4().hex)
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=gzip.compress(b"".join(buffer.lines)))
                del self._buffers[prefix]
                self._counts["error_objects" if buffer.errors else "objects"] += 1
