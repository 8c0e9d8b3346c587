"""The reader's cost: round trips per read, whatever the number of items."""

from __future__ import annotations

import socket
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from pit_helpers import NOW, make_event

from recsys.config import PitFeatureConfig
from recsys.features import PIT_FEATURES, FeatureReader, FeatureWriter, ItemCatalog

CONFIG = PitFeatureConfig()
FETCHING = replace(CONFIG, item_cache_entries=0)  # every read fetches its items: what the wire-level tests count


class Received:
    """A socket that tells `CountingConnection` when bytes come in."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def recv_into(self, *args, **kwargs) -> int:
        CountingConnection.awaiting = False
        return self._sock.recv_into(*args, **kwargs)

    def recv(self, *args, **kwargs) -> bytes:
        CountingConnection.awaiting = False
        return self._sock.recv(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class CountingConnection(redis.Connection):
    """Counts round trips: requests sent one after another with no reply read in between (pipelined) are one."""

    round_trips = 0
    sends = 0
    awaiting = False

    def _connect(self):
        return Received(super()._connect())

    def send_packed_command(self, command, check_health=True):
        CountingConnection.sends += 1
        if not CountingConnection.awaiting:
            CountingConnection.round_trips += 1
            CountingConnection.awaiting = True
        return super().send_packed_command(command, check_health)


@pytest.fixture
def counting_client(redis_client, local_platform):
    pool = redis.ConnectionPool.from_url(local_platform.valkey.url, connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    client.ping()  # the connection's handshake is not part of a read
    yield client
    client.close()


def round_trips(client: redis.Redis, user: str, items: list[str], reader: FeatureReader | None = None) -> int:
    reader = reader or FeatureReader(client, FETCHING)  # a new reader: no creator in its cache
    CountingConnection.round_trips = CountingConnection.sends = 0
    reader.read(user, items, now=NOW)
    return CountingConnection.round_trips


def test_one_user_and_1000_items_take_two_round_trips(redis_client, counting_client):
    items = [f"item-{n}" for n in range(1000)]
    ItemCatalog(redis_client).upsert_items(
        [{"ITEM_ID": item, "CREATOR": f"creator-{n % 150}", "GENRES": f"g{n % 9}"} for n, item in enumerate(items)])
    FeatureWriter(redis_client, CONFIG).apply(
        [make_event(f"e{n}", "listen", n, item_id=items[n * 7], value=400) for n in range(100)])
    assert round_trips(counting_client, "u1", items) == 2  # user + items, then the items' creators
    assert CountingConnection.sends == 3  # the user's request and the MGET pipelined, then the creators'
    snapshot = FeatureReader(counting_client, FETCHING).read("u1", items, now=NOW)
    assert len(snapshot.items) == 1000
    plays_per_creator = Counter(n * 7 % 150 for n in range(100))
    assert snapshot.items.column("creator_plays").tolist() == [plays_per_creator[n % 150] for n in range(1000)]
    assert snapshot.items.column("item_plays").tolist() == [float(n % 7 == 0 and n < 700) for n in range(1000)]


def test_a_read_of_kept_records_takes_one_round_trip_and_fetches_only_what_changed(redis_client, counting_client):
    items = [f"item-{n}" for n in range(1000)]
    ItemCatalog(redis_client).upsert_items(
        [{"ITEM_ID": item, "CREATOR": f"creator-{n % 150}"} for n, item in enumerate(items)])
    reader = FeatureReader(counting_client, CONFIG)
    reader.read("u1", items, now=NOW)  # keeps every item record (and the creators' for creator_cache_s)
    redis_client.config_resetstat()
    assert round_trips(counting_client, "u1", items, reader) == 1  # the user's features alone
    assert CountingConnection.sends == 1
    assert "cmdstat_mget" not in redis_client.info("commandstats")
    FeatureWriter(redis_client, CONFIG).apply([make_event("e1", "listen", 10, item_id="item-5", value=60)])
    assert round_trips(counting_client, "u1", items, reader) == 1  # the user's request and one record's MGET
    assert CountingConnection.sends == 2
    assert redis_client.info("commandstats")["cmdstat_mget"]["calls"] == 1
    assert reader.read("u1", ["item-5"], now=NOW).items["item-5"]["item_plays"] == 1


def test_cached_creators_save_the_second_round_trip_for_creator_cache_s(redis_client, counting_client):
    items = [f"item-{n}" for n in range(50)]
    ItemCatalog(redis_client).upsert_items([{"ITEM_ID": item, "CREATOR": f"c{n % 5}"} for n, item in enumerate(items)])
    writer = FeatureWriter(redis_client, CONFIG)
    writer.apply([make_event("e1", "listen", 10, item_id="item-0", value=60)])
    reader = FeatureReader(counting_client, CONFIG)
    reader.read("u1", items, now=NOW)
    assert round_trips(counting_client, "u1", items[:20], reader) == 1
    writer.apply([make_event("e2", "listen", 5, item_id="item-5", value=60)])  # item-5: creator c0 too
    cached = reader.read("u1", ["item-5"], now=NOW).items["item-5"]
    assert (cached["item_plays"], cached["creator_plays"]) == (1, 1)  # item counters are always read fresh
    uncached = FeatureReader(counting_client, replace(FETCHING, creator_cache_s=0))
    assert uncached.read("u1", ["item-5"], now=NOW).items["item-5"]["creator_plays"] == 2
    assert round_trips(counting_client, "u1", items, uncached) == 2


def test_cached_creators_give_each_read_time_its_own_window(redis_client):
    ItemCatalog(redis_client).upsert_items([{"ITEM_ID": "a", "CREATOR": "c1"}, {"ITEM_ID": "b", "CREATOR": "c1"}])
    FeatureWriter(redis_client, CONFIG).apply([make_event("e1", "listen", 10, item_id="a", value=60)])
    reader = FeatureReader(redis_client, CONFIG)  # creator counters cached 5 s, features memoized per second

    def creator_recent_plays(now: float) -> list[float]:
        return reader.read("u1", ["a", "b"], now=now).items.column("creator_recent_plays").tolist()

    assert creator_recent_plays(NOW) == [1, 1]
    assert creator_recent_plays(NOW + 31 * 86400) == [0, 0]  # the play left the 30-day window
    assert creator_recent_plays(NOW - 60) == [0, 0]  # before the play
    assert creator_recent_plays(NOW) == [1, 1]


def test_items_without_creators_take_one_round_trip(counting_client):
    assert round_trips(counting_client, "u1", [f"item-{n}" for n in range(1000)]) == 1


def test_the_reader_returns_exactly_the_spec_features(redis_client):
    snapshot = FeatureReader(redis_client, CONFIG).read("u1", ["a"], now=NOW)
    assert set(snapshot.user) == {s.name for s in PIT_FEATURES if s.entity == "user"}
    assert set(snapshot.items["a"]) == {s.name for s in PIT_FEATURES if s.entity != "user"}


class FlakyConnection(redis.Connection):
    """Loses its socket on the next send when `cut` is set, as a network cut or a failover does."""

    cut = False

    def send_packed_command(self, command, check_health=True):
        if FlakyConnection.cut:
            FlakyConnection.cut = False
            self.disconnect()
            raise redis.ConnectionError("connection cut by the test")
        return super().send_packed_command(command, check_health)


@pytest.mark.parametrize("retries", [0, 1])
def test_a_cut_connection_is_retried_per_the_client_policy(redis_client, local_platform, retries):
    ItemCatalog(redis_client).upsert_items([{"ITEM_ID": "a", "CREATOR": "c1"}])
    FeatureWriter(redis_client, CONFIG).apply([make_event("e1", "listen", 10, item_id="a", value=60)])
    pool = redis.ConnectionPool.from_url(local_platform.valkey.url, connection_class=FlakyConnection,
                                         retry=Retry(NoBackoff(), retries))
    reader = FeatureReader(redis.Redis(connection_pool=pool), CONFIG)
    reader.read("u1", ["a"], now=NOW)  # connected: the cut hits the read's own request
    FlakyConnection.cut = True
    if retries:
        assert reader.read("u1", ["a"], now=NOW).items["a"]["item_plays"] == 1
    else:
        with pytest.raises(redis.ConnectionError, match="cut by the test"):
            reader.read("u1", ["a"], now=NOW)
    assert reader.read("u1", ["a"], now=NOW).items["a"]["creator_plays"] == 1
    pool.disconnect()


class EndOfStream:
    """A socket whose next read finds the stream ended, as when the server or a proxy closes mid-reply."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def recv_into(self, *args, **kwargs) -> int:
        return 0

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class ClosedMidReplyConnection(redis.Connection):
    """Sends the request, then finds the connection closed before the replies are in."""

    close = False

    def send_packed_command(self, command, check_health=True):
        super().send_packed_command(command, check_health)
        if ClosedMidReplyConnection.close:
            ClosedMidReplyConnection.close = False
            self._sock = EndOfStream(self._sock)


@pytest.mark.parametrize("retries", [0, 1])
def test_a_connection_closed_mid_reply_is_retried_per_the_client_policy(redis_client, local_platform, retries):
    items = [f"item-{n}" for n in range(300)]
    ItemCatalog(redis_client).upsert_items([{"ITEM_ID": item, "CREATOR": "c1"} for item in items])
    FeatureWriter(redis_client, CONFIG).apply([make_event("e1", "listen", 10, item_id="item-7", value=60)])
    pool = redis.ConnectionPool.from_url(local_platform.valkey.url, connection_class=ClosedMidReplyConnection,
                                         retry=Retry(NoBackoff(), retries))
    reader = FeatureReader(redis.Redis(connection_pool=pool), FETCHING)  # the records' reply is the one cut
    reader.read("u1", items, now=NOW)
    ClosedMidReplyConnection.close = True
    if retries:
        assert reader.read("u1", items, now=NOW).items["item-7"]["item_plays"] == 1
    else:
        with pytest.raises(redis.ConnectionError, match="closed"):
            reader.read("u1", items, now=NOW)
    assert reader.read("u1", items, now=NOW).items["item-7"]["creator_plays"] == 1  # the pool reconnects
    pool.disconnect()


@pytest.mark.parametrize("protocol", [2, 3])
def test_native_and_numpy_readers_agree_in_either_protocol(redis_client, local_platform, protocol):
    items = [f"item-{n}" for n in range(120)] + ["missing", "item-3"]  # a record that is not there, a duplicate
    ItemCatalog(redis_client).upsert_items(
        [{"ITEM_ID": item, "CREATOR": f"c{n % 7}", "GENRES": f"g{n % 5}|g{n % 3}", "PRICE": n / 10}
         for n, item in enumerate(items[:120])])
    FeatureWriter(redis_client, CONFIG).apply(
        [make_event(f"e{n}", kind, n * 97, item_id=items[n % 120], value=400)
         for n, kind in enumerate(["listen", "like", "purchase", "view"] * 40)])
    client = redis.Redis.from_url(local_platform.valkey.url, protocol=protocol)
    reader = FeatureReader(client, CONFIG)
    native = reader.read("u1", items, now=NOW + 3600)
    cached = reader.read("u1", items[::-1], now=NOW + 3600)  # creators served from the cache, natively
    fallback = FeatureReader(client, CONFIG, native=False).read("u1", items, now=NOW + 3600)
    assert native.items.item_ids == fallback.items.item_ids and len(native.items) == 121
    assert (native.items.matrix == fallback.items.matrix).all()
    assert {item: cached.items[item] for item in items} == {item: fallback.items[item] for item in items}
    assert fallback.items.column("creator_plays").sum() > 0
    assert native.user == fallback.user and native.user["user_events"] > 0
    assert native.items["missing"]["item_age_days"] == -1.0 and native.items["item-7"]["item_price"] > 0
    client.close()


def test_an_error_reply_is_raised_and_keeps_the_connection_in_step(redis_client):
    ItemCatalog(redis_client).upsert_items([{"ITEM_ID": "a"}])
    FeatureWriter(redis_client, CONFIG).apply([make_event("e1", "listen", 10, item_id="a", value=60)])
    reader = FeatureReader(redis_client, CONFIG)
    redis_client.set("pit:{u:broken}:recent", "not a hash")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        reader.read("broken", ["a"], now=NOW)
    # the replies after the error were read too: the next read gets its own answers
    assert reader.read("u1", ["a"], now=NOW).user["user_events"] == 1


def test_reads_on_several_threads_share_one_reader(redis_client):
    items = [f"item-{n}" for n in range(200)]
    ItemCatalog(redis_client).upsert_items([{"ITEM_ID": item, "CREATOR": f"c{n % 40}"} for n, item in enumerate(items)])
    FeatureWriter(redis_client, CONFIG).apply(
        [make_event(f"e{n}", "listen", n, item_id=items[n], value=60) for n in range(0, 200, 3)])
    expected = FeatureReader(redis_client, CONFIG).read("u1", items, now=NOW).items.matrix
    reader = FeatureReader(redis_client, replace(CONFIG, creator_cache_s=0.01))  # the cache refills as threads read

    def read(n: int) -> bool:
        order = items[n % 7:] + items[:n % 7]
        got = reader.read("u1", order, now=NOW).items
        return bool((got.matrix[[order.index(i) for i in items]] == expected).all())

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(read, range(300)))
