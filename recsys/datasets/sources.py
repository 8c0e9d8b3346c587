"""Where dataset CSV files come from: a local folder or an s3:// prefix, plain or gzip, read as a stream.

Reading also digests the bytes, so the importer learns a file's content hash in its one pass over it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from botocore.exceptions import ClientError

from recsys import aws
from recsys.datasets.errors import DatasetImportError
from recsys.datasets.schema import DATASET_NAMES

SUFFIXES = (".csv", ".csv.gz")
_READ_BUFFER = 1 << 20


def split_s3_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/some/prefix -> ("bucket", "some/prefix")."""
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise DatasetImportError(f"{uri}: not an s3://bucket[/prefix] URI")
    return bucket, prefix.strip("/")


@dataclass(frozen=True)
class DatasetFiles:
    """The files of one dataset import: interactions is required, users and items are optional."""

    interactions: str
    users: str | None = None
    items: str | None = None

    def of(self, dataset: str) -> str | None:
        return getattr(self, dataset)


def _pick(dataset: str, present: dict[str, str], where: str) -> str | None:
    found = [present[dataset + suffix] for suffix in SUFFIXES if dataset + suffix in present]
    if len(found) > 1:
        raise DatasetImportError(f"{where}: both {dataset}.csv and {dataset}.csv.gz; keep one")
    return found[0] if found else None


def find_dataset_files(source: str | Path) -> DatasetFiles:
    """The dataset files in a folder or under an s3:// prefix: interactions.csv[.gz], users.csv[.gz], items.csv[.gz]."""
    where = str(source)
    if where.startswith("s3://"):
        bucket, prefix = split_s3_uri(where)
        paginator = aws.client("s3").get_paginator("list_objects_v2")
        present = {}
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else "", Delimiter="/"):
                for obj in page.get("Contents", []):
                    present[obj["Key"].rsplit("/", 1)[-1]] = f"s3://{bucket}/{obj['Key']}"
        except ClientError as exc:
            raise DatasetImportError(f"{where}: cannot be listed ({exc})") from exc
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise DatasetImportError(f"{where}: not a folder")
        present = {path.name: str(path) for path in folder.iterdir() if path.is_file()}
    files = {dataset: _pick(dataset, present, where) for dataset in DATASET_NAMES}
    interactions = files.pop("interactions")
    if interactions is None:
        raise DatasetImportError(f"{where}: no interactions.csv (or interactions.csv.gz); it is the one required file")
    return DatasetFiles(interactions=interactions, **files)


class _DigestingReader(io.RawIOBase):
    """Passes bytes through and feeds them to a hash on the way."""

    def __init__(self, raw: Any, digest: Any) -> None:
        self._raw = raw
        self._digest = digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self._digest.update(data)
        return size


def _open_binary(location: str, stack: ExitStack) -> BinaryIO:
    if location.startswith("s3://"):
        bucket, key = split_s3_uri(location)
        body = aws.client("s3", read_timeout=60.0).get_object(Bucket=bucket, Key=key)["Body"]
        stack.callback(body.close)
        return body
    return stack.enter_context(open(location, "rb"))


@contextmanager
def open_text(location: str) -> Iterator[tuple[TextIO, Any]]:
    """A text stream of a local or S3 CSV file (gunzipped if it ends in .gz), and the SHA-256 of its bytes.

    Invalid UTF-8 bytes are kept as lone surrogates, so that the validator reports them with their row and column.
    The digest is complete once the stream has been read to the end.
    """
    digest = hashlib.sha256()
    with ExitStack() as stack:
        binary: Any = io.BufferedReader(_DigestingReader(_open_binary(location, stack), digest), _READ_BUFFER)
        if location.endswith(".gz"):
            binary = gzip.GzipFile(fileobj=binary, mode="rb")
        yield io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline=""), digest
