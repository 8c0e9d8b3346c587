"""PIT feature store: writer throughput, FeatureReader latency, Redis memory per item and per user.

    python -m benchmarks.bench_features                     # defaults below
    python -m benchmarks.bench_features --memory-items 100000 --memory-users 100000

Everything runs against a private Valkey 8 server on loopback, started for the run (the local MemoryDB stand-in),
from one Python process. The synthetic catalog has `--items` items (3 topics each among 40, 1 of 500 creators,
1 of 300 franchises); events mix plays, views, clicks, likes and purchases over the last 8 days.

- writer: `FeatureWriter.apply` on batches of 100 events (what one SQS batch brings), every event new;
- reader: `FeatureReader.read` of one user (with history) and 1,000 distinct random items of the catalog,
  after a warm-up, timed end to end in the caller (decoding included), while a second process writes events at
  `--write-rate` (every write changes an item record, so the item cache keeps losing records as in production):
  the default reader (item cache and creator cache); the same for a user with as much history as the spec keeps
  (`affinity_max_entries` affinities, `recent_items` recent items); without the item cache (every read fetches
  its 1,000 records: a fresh process's first reads); without either cache (always two round trips); with the numpy
  fallback (no item cache); and, as the floor of a read that fetches its records, the same MGET on a raw socket
  with nothing decoded;
- memory: INFO used_memory before and after writing N items (catalog + one event each) and N users (profile +
  `--user-events` events each), divided by N and scaled linearly to 1M; dedupe markers are counted apart;
- cluster: the writer and the reader (default user, 1,000 random items) on a local 3-node Valkey cluster, the
  client path MemoryDB runs, with the three nodes on the same 2 cores as the client: the writer's throughput, then
  the reader with and without the item cache in turns while a second process writes at `--write-rate`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster

from benchmarks.common import percentile, record
from recsys.config import PitFeatureConfig
from recsys.events import Event
from recsys.features import FeatureReader, FeatureWriter, ItemCatalog, native
from recsys.features.layout import KEY_BUCKETS, RecordLayout, record_layout
from recsys.local.services import start_valkey, start_valkey_cluster

DAY = 86400
KINDS = ["listen"] * 4 + ["watch"] * 2 + ["view"] * 2 + ["click", "like", "purchase"]


def catalog_records(n: int, prefix: str = "item") -> list[dict]:
    rng = random.Random(7)
    return [
        {"ITEM_ID": f"{prefix}-{k}", "GENRES": "|".join(f"topic-{t}" for t in rng.sample(range(40), 3)),
         "CREATOR": f"creator-{rng.randrange(500)}", "FRANCHISE": f"franchise-{rng.randrange(300)}",
         "PRICE": round(rng.uniform(0, 20), 2), "IS_PAID": rng.random() < 0.2,
         "CREATION_TIMESTAMP": time.time() - rng.uniform(0, 90) * DAY}
        for k in range(n)
    ]


def events(n: int, items: list[str], users: list[str], seed: int, prefix: str = "e") -> list[Event]:
    rng = random.Random(seed)
    now = time.time()
    return [
        Event(f"{prefix}-{k}", rng.choice(users), kind, now - rng.uniform(0, 8 * DAY), item_id=rng.choice(items),
              event_value=rng.uniform(10, 3600) if kind in ("listen", "watch") else None)
        for k, kind in ((k, rng.choice(KINDS)) for k in range(n))
    ]


def event_stream(args: argparse.Namespace) -> list[Event]:
    items = [r["ITEM_ID"] for r in catalog_records(args.items)]
    return events(args.events, items, [f"user-{k}" for k in range(args.users)], seed=1)


def read_requests(args: argparse.Namespace) -> list[list[str]]:
    """The reads' candidates: 50 draws of 1,000 distinct items of the catalog, the same for every reader part."""
    items = [r["ITEM_ID"] for r in catalog_records(args.items)]
    rng = random.Random(3)
    return [rng.sample(items, 1000) for _ in range(50)]


def bench_writer(client: redis.Redis, config: PitFeatureConfig, args: argparse.Namespace) -> None:
    stream = event_stream(args)
    writer = FeatureWriter(client, config)
    writer.apply(stream[:100])  # loads the scripts
    began = time.perf_counter()
    for start in range(100, len(stream), 100):
        writer.apply(stream[start:start + 100])
    elapsed = time.perf_counter() - began
    record(
        "pit_writer_events_per_s", figure="PIT feature writer throughput", value=(len(stream) - 100) / elapsed,
        unit="events/s",
        conditions=f"one process, batches of 100 events, {len(stream) - 100:,} new events over {args.items:,} items "
                   f"and {args.users:,} users (user, item and creator scripts per play), local Valkey 8 on loopback; "
                   f"{load()}",
    )


@contextmanager
def steady_writes(url: str, cluster: bool, args: argparse.Namespace) -> Iterator[Callable[[], str]]:
    """A second process applying `args.write_rate` events per second (in batches every 10 ms) while the block runs,
    at the lowest priority (in production the writers run on other machines; the server's work is the same); yields
    a function that says what it wrote."""
    if args.write_rate <= 0:
        yield lambda: "nothing is written"
        return
    stop, written = multiprocessing.Event(), multiprocessing.Value("q", 0)
    process = multiprocessing.Process(target=_write_steadily, args=(url, cluster, args, stop, written), daemon=True)
    process.start()
    began = time.perf_counter()
    try:
        yield lambda: (f"a second process (nice 19) writes {args.write_rate:,} events/s (achieved "
                       f"{written.value / (time.perf_counter() - began):,.0f}) over the catalog's items")
    finally:
        stop.set()
        process.join(10)


def _write_steadily(url: str, cluster: bool, args: argparse.Namespace, stop: Any, written: Any) -> None:
    os.nice(19)  # the writers run on other machines in production: here they only take the cores the reader leaves
    client = RedisCluster.from_url(url) if cluster else redis.Redis.from_url(url)
    writer = FeatureWriter(client, PitFeatureConfig())
    items = [r["ITEM_ID"] for r in catalog_records(args.items)]
    users = [f"user-{k}" for k in range(args.users)]
    per_tick, tick, at = max(1, round(args.write_rate / 100)), 0, time.perf_counter()
    while not stop.is_set():
        writer.apply(events(per_tick, items, users, seed=1_000_000 + tick, prefix=f"steady-{tick}-"))
        written.value += per_tick
        tick += 1
        at += 0.01
        time.sleep(max(0.0, at - time.perf_counter()))


def read_in_turns(reads: dict[str, Callable[[list[str]], object]], requests: list[list[str]], count: int,
                  warm_up: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Each read `count` times (after `warm_up`), in turns of 250, so that a change in the shared machine's load
    falls on all of them alike: their latencies in ms, and their CPU seconds."""
    samples: dict[str, list[float]] = {key: [] for key in reads}
    cpu = dict.fromkeys(reads, 0.0)
    for read in reads.values():
        for n in range(warm_up):
            read(requests[n % len(requests)])
    for block in range(-(-count // 250)):
        for key, read in reads.items():
            began_cpu = time.process_time()
            for n in range(block * 250, min((block + 1) * 250, count)):
                began = time.perf_counter()
                read(requests[n % len(requests)])
                samples[key].append((time.perf_counter() - began) * 1000)
            cpu[key] += time.process_time() - began_cpu
    return samples, cpu


def cache_use(reader: FeatureReader | None) -> str:
    if reader is None or reader.item_cache is None:
        return ""
    table = reader.item_cache.table
    return f"; {table.hits / max(1, table.hits + table.misses):.1%} of the items read were kept"


def bench_reader(client: redis.Redis, config: PitFeatureConfig, args: argparse.Namespace) -> None:
    user, full_user = "user-1", "user-full"
    items = [r["ITEM_ID"] for r in catalog_records(args.items)]
    history = FeatureReader(client, config).read(user, []).user
    if not history["user_events"]:  # the reader part alone: the writer's history, written untimed
        FeatureWriter(client, config).apply(event_stream(args))
        history = FeatureReader(client, config).read(user, []).user
    # a user with as much history as the spec keeps: affinity_max_entries affinities, recent_items recent items
    FeatureWriter(client, config).apply(events(2 * config.affinity_max_entries, items, [full_user], seed=5,
                                               prefix="full"))
    full_history = FeatureReader(client, config).read(full_user, []).user
    requests = read_requests(args)
    fetching = replace(config, item_cache_entries=0)
    variants = [
        (f"native decoder, item cache {config.item_cache_entries:,} records and creator cache "
         f"{config.creator_cache_s:g} s (the defaults)", "pit_reader", "PIT FeatureReader",
         FeatureReader(client, config), user, history),
        ("native decoder, both caches, a user with a full history", "pit_reader_full_user",
         "PIT FeatureReader, a user with a full history,", FeatureReader(client, config), full_user, full_history),
        ("native decoder, no item cache: every read fetches its 1,000 records", "pit_reader_fetching",
         "PIT FeatureReader, no item cache,", FeatureReader(client, fetching), user, history),
        ("native decoder, no item or creator cache: every read fetches its records, then their creators'",
         "pit_reader_uncached", "PIT FeatureReader, no cache,",
         FeatureReader(client, replace(fetching, creator_cache_s=0)), user, history),
        ("numpy and redis-py, the fallback without the native decoder (no item cache)", "pit_reader_numpy",
         "PIT FeatureReader, numpy fallback,", FeatureReader(client, config, native=False), user, history),
    ]
    reads: dict[str, Callable[[list[str]], object]] = {
        key: partial(reader.read, reader_user) for _, key, _, reader, reader_user, _ in variants}
    if native.ReplyScanner is not None:  # the floor of a fetching read: the same MGET, received, nothing decoded
        variants.append(("the MGET alone on a raw socket: the server and the network, nothing decoded",
                         "pit_reader_raw_mget", "Raw MGET round trip of the reader's 1,000 records,", None, user,
                         history))
        reads["pit_reader_raw_mget"] = RawMget(client, record_layout("item", config))
    kwargs = client.connection_pool.connection_kwargs
    with steady_writes(f"redis://{kwargs['host']}:{kwargs['port']}", False, args) as writes:
        load_before = load()
        client.config_resetstat()
        samples, cpu = read_in_turns(reads, requests, args.reads, warm_up=200)
        server_us = client.info("commandstats")["cmdstat_mget"]["usec_per_call"]
        writing = writes()
    for label, key, title, reader, _, read_history in variants:
        p50, p90, p99 = (percentile(samples[key], q) for q in (50, 90, 99))
        over = sum(sample > 2 for sample in samples[key]) / len(samples[key])
        affinities = sum(len(read_history[name]) for name in read_history if name.endswith("affinity"))
        conditions = (
            f"1 user ({read_history['user_events']:.0f} events, {affinities} affinity entries, "
            f"{len(read_history['user_recent_items'])} recent items) + 1,000 random items of {args.items:,} ({label}), "
            f"{args.reads:,} reads after 200 warm-up, in turns with the other variants, one process, while {writing}, "
            f"local Valkey 8 on loopback (its MGET of 1,000 records: {server_us:.0f} µs per call on average); "
            f"p90 {p90:.2f} ms; {over:.1%} of reads over 2 ms; CPU {cpu[key] / args.reads * 1000:.2f} ms/read"
            f"{cache_use(reader)}; before: {load_before}, after: {load()}"
        )
        target, meets = ("≤ 20 ms (Amp)", p50 <= 20) if reader else ("", None)
        record(f"{key}_p50_ms", figure=f"{title} p50 (1 user + 1,000 items)", value=p50, unit="ms",
               conditions=conditions, target=target, meets=meets)
        target, meets = ("≤ 2 ms", p99 <= 2) if reader else ("", None)
        record(f"{key}_p99_ms", figure=f"{title} p99 (1 user + 1,000 items)", value=p99, unit="ms",
               conditions=conditions, target=target, meets=meets)


class RawMget:
    """One MGET of the items' records on a socket of its own, read until the reply is whole, nothing parsed."""

    def __init__(self, client: redis.Redis, record: RecordLayout) -> None:
        kwargs = client.connection_pool.connection_kwargs
        self.socket = socket.create_connection((kwargs["host"], kwargs["port"]))
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.affixes = record.key_affixes()
        self.buffer = bytearray(1 << 20)

    def __call__(self, item_ids: list[str]) -> int:
        request, _ = native.pack_mget(item_ids, *self.affixes, False)
        self.socket.sendall(request)
        scanner, length = native.ReplyScanner(1), 0
        while (end := scanner.feed(self.buffer, length)) < 0:
            got = self.socket.recv_into(memoryview(self.buffer)[length:])
            if not got:
                raise ConnectionError("the server closed the connection")
            length += got
        return end


def load() -> str:
    """The machine is shared: say how busy it was."""
    return "load average {:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())


def used_memory(client: redis.Redis) -> int:
    """used_memory once the background frees are done (Valkey 8 deletes and flushes lazily by default)."""
    while int(client.info("memory")["lazyfree_pending_objects"]):
        time.sleep(0.01)
    return int(client.info("memory")["used_memory"])


def flush(client: redis.Redis) -> None:
    client.execute_command("FLUSHALL", "SYNC")


def drop_markers(client: redis.Redis) -> int:
    """Delete the dedupe marker sets; returns the bytes they held."""
    before = used_memory(client)
    batch = [key for key in client.scan_iter(match="pit:*:seen:*", count=10_000)]
    for start in range(0, len(batch), 10_000):
        client.delete(*batch[start:start + 10_000])
    return before - used_memory(client)


def bench_memory(client: redis.Redis, config: PitFeatureConfig, args: argparse.Namespace) -> None:
    n = args.memory_items
    writer = FeatureWriter(client, config)
    catalog = ItemCatalog(client, config)
    flush(client)
    base = used_memory(client)
    records = catalog_records(n, prefix="mem-item")
    for start in range(0, n, 1000):
        catalog.upsert_items(records[start:start + 1000])
    item_ids = [r["ITEM_ID"] for r in records]
    one_each = [Event(f"m-{k}", "mem-user", "listen", time.time() - 60, item_id=item, event_value=600.0)
                for k, item in enumerate(item_ids)]
    for start in range(0, n, 500):
        writer.apply(one_each[start:start + 500])
    client.delete(*client.keys("pit:{u:mem-user}:*"))
    markers = drop_markers(client)
    creators = sum(1 for _ in client.scan_iter(match=f"{writer.creator_layout.key_prefix}*", count=10_000))
    item_bytes = used_memory(client) - base
    record(
        "pit_memory_per_1m_items_mib", figure="PIT store memory per 1M items", value=item_bytes / n * 1e6 / 2**20,
        unit="MiB",
        conditions=f"measured on {n:,} items and scaled linearly: catalog metadata hash + record "
                   f"({writer.item_layout.size} B) with counters and windows, {creators} creator records; "
                   "dedupe markers excluded (see extra)",
        extra={"dedupe_marker_bytes_per_event_entity": round(markers / (2 * n), 1)},
    )
    print(f"dedupe markers: {markers / (2 * n):.1f} bytes per (event, entity), kept {config.dedupe_ttl_days} days")

    n = args.memory_users
    flush(client)
    base = used_memory(client)
    users = [f"mem-user-{k}" for k in range(n)]
    for start in range(0, n, 1000):
        catalog.upsert_users([{"USER_ID": u, "AGE": 30, "TOPICS": "topic-1|topic-2", "GEO": "ES"}
                              for u in users[start:start + 1000]])
    catalog.upsert_items(catalog_records(args.items))
    items = [r["ITEM_ID"] for r in catalog_records(args.items)]
    rng = random.Random(5)
    stream = [Event(f"u-{k}-{j}", user, rng.choice(KINDS), time.time() - rng.uniform(0, 30 * DAY),
                    item_id=rng.choice(items), event_value=600.0)
              for k, user in enumerate(users) for j in range(args.user_events)]
    for start in range(0, len(stream), 500):
        writer.apply(stream[start:start + 500])
    for pattern in ("pit:{i:*", "pit:{c:*", f"{writer.item_layout.key_prefix}*", f"{writer.creator_layout.key_prefix}*"):
        keys = list(client.scan_iter(match=pattern, count=10_000))
        if keys:
            client.delete(*keys)
    drop_markers(client)
    user_bytes = used_memory(client) - base
    record(
        "pit_memory_per_1m_users_mib", figure="PIT store memory per 1M users", value=user_bytes / n * 1e6 / 2**20,
        unit="MiB",
        conditions=f"measured on {n:,} users and scaled linearly: profile (AGE, TOPICS, GEO), {args.user_events} "
                   "events each over distinct items (counts, recent items, topic/creator/franchise affinities); "
                   "dedupe markers excluded",
    )


def bench_cluster(_client: redis.Redis, config: PitFeatureConfig, args: argparse.Namespace) -> None:
    """The writer and the reader on a local 3-node Valkey cluster: the client path MemoryDB runs (cluster mode)."""
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        nodes = start_valkey_cluster(Path(scratch))
        try:
            client = RedisCluster(host="127.0.0.1", port=nodes[0].port)
            ItemCatalog(client, config).upsert_items(catalog_records(args.items))
            stream = event_stream(args)
            writer = FeatureWriter(client, config)
            began = time.perf_counter()
            for start in range(0, len(stream), 100):
                writer.apply(stream[start:start + 100])
            written_per_s = len(stream) / (time.perf_counter() - began)
            readers = {"pit_reader_cluster": FeatureReader(client, config),
                       "pit_reader_cluster_fetching": FeatureReader(client, replace(config, item_cache_entries=0))}
            with steady_writes(f"redis://127.0.0.1:{nodes[0].port}", True, args) as writes:
                samples, _ = read_in_turns({key: partial(reader.read, "user-1") for key, reader in readers.items()},
                                           read_requests(args), args.cluster_reads, warm_up=100)
                writing = writes()
        finally:
            for node in nodes:
                node.stop()
    setting = (f"local 3-node Valkey 8 cluster on the same 2 cores, redis-py cluster client (writer: one script per "
               f"entity straight to its slot; reader: one MGET per key bucket, {KEY_BUCKETS} buckets, on each node's "
               f"own connection, parsed natively), as on MemoryDB; {load()}")
    record("pit_writer_cluster_events_per_s", figure="PIT feature writer throughput, 3-node cluster",
           value=written_per_s, unit="events/s",
           conditions=f"one process, batches of 100 events, {len(stream):,} new events over {args.items:,} items and "
                      f"{args.users:,} users; {setting}")
    for key, label, title in (
            ("pit_reader_cluster", "item cache and creator cache, the defaults", "PIT FeatureReader on a 3-node cluster"),
            ("pit_reader_cluster_fetching", "no item cache: every read fetches its 1,000 records",
             "PIT FeatureReader on a 3-node cluster, no item cache,")):
        p50, p90, p99 = (percentile(samples[key], q) for q in (50, 90, 99))
        conditions = (f"1 user + 1,000 random items of {args.items:,} ({label}), {args.cluster_reads:,} reads after "
                      f"100 warm-up, in turns with the other variant, while {writing}; p90 {p90:.2f} ms"
                      f"{cache_use(readers[key])}; {setting}")
        record(f"{key}_p50_ms", figure=f"{title} p50 (1 user + 1,000 items)", value=p50, unit="ms",
               conditions=conditions, target="≤ 20 ms (Amp)", meets=p50 <= 20)
        record(f"{key}_p99_ms", figure=f"{title} p99 (1 user + 1,000 items)", value=p99, unit="ms",
               conditions=conditions, target="≤ 2 ms", meets=p99 <= 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--reads", type=int, default=5_000)
    parser.add_argument("--memory-items", type=int, default=100_000)
    parser.add_argument("--memory-users", type=int, default=20_000)
    parser.add_argument("--user-events", type=int, default=10)
    parser.add_argument("--cluster-reads", type=int, default=2_000)
    parser.add_argument("--write-rate", type=int, default=1_000, help="events/s written while the reader is timed")
    parser.add_argument("--parts", default="writer,reader,memory,cluster", help="comma-separated subset to run")
    args = parser.parse_args()
    config = PitFeatureConfig()
    with tempfile.TemporaryDirectory(prefix="bench-features-") as scratch:
        valkey = start_valkey(Path(scratch))
        try:
            client = redis.Redis.from_url(valkey.url)
            ItemCatalog(client, config).upsert_items(catalog_records(args.items))
            parts = {"writer": bench_writer, "reader": bench_reader, "memory": bench_memory, "cluster": bench_cluster}
            for part in args.parts.split(","):
                parts[part](client, config, args)
        finally:
            valkey.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
