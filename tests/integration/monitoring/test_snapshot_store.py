"""SnapshotStore and the daily showcase-health job against the real Valkey server."""

from datetime import date, timedelta

from recsys.config import ShowcaseHealthConfig
from recsys.monitoring.metrics import InMemoryPublisher
from recsys.monitoring.showcase_health import Snapshot, SnapshotStore, run_showcase_health_job

TODAY = date(2024, 5, 8)


def test_put_get_ttl_and_scan(redis_client):
    store = SnapshotStore(redis_client, "recsys-dev", ttl_days=8)
    snapshot = Snapshot.of({"top": ["a", "b"], "new": ["c"]})
    store.put("user:1", TODAY, snapshot)
    store.put("user-2", TODAY.isoformat(), snapshot)
    store.put("user-3", TODAY - timedelta(days=1), snapshot)
    assert store.get("user:1", TODAY) == snapshot
    assert store.get("user:1", TODAY - timedelta(days=1)) is None
    assert sorted(store.scan_users(TODAY)) == ["user-2", "user:1"]
    assert 7 * 86400 < redis_client.ttl(store.key("user:1", TODAY)) <= 8 * 86400
    assert 7 * 86400 < redis_client.ttl(store.users_key(TODAY)) <= 8 * 86400
    assert store.get_many(["user:1", "nobody"], TODAY) == {"user:1": snapshot}


def test_daily_job_over_stored_snapshots(redis_client, tmp_path):
    store = SnapshotStore(redis_client, "recsys-dev")
    for i in range(1200):  # more than one batch of users
        user = f"u{i}"
        store.put(user, TODAY, Snapshot.of({"top": [f"a{i}", "b"], "new": ["c"]}))
        # A third of the users got yesterday's page again.
        yesterday = {"top": [f"a{i}", "b"], "new": ["c"]} if i % 3 == 0 else {"top": ["old", "b"], "new": ["c"]}
        store.put(user, TODAY - timedelta(days=1), Snapshot.of(yesterday))
        if i < 100:
            store.put(user, TODAY - timedelta(days=7), Snapshot.of({"top": ["x", "b"], "new": ["c"]}))
    publisher = InMemoryPublisher()
    report = run_showcase_health_job(store, TODAY, ShowcaseHealthConfig(), publisher, report_uri=str(tmp_path))
    assert (report.users_today, report.users_compared, report.unchanged) == (1200, 1200, 400)
    assert publisher.value("ShowcaseUnchangedShare") == report.unchanged_share == 400 / 1200
    # 800 users see one new item out of three.
    assert publisher.value("ShowcaseDailyNovelty") == (800 * 1) / (1200 * 3)
    # 100 users compared with last week: "top" changed, "new" did not.
    assert publisher.value("ShowcaseWeeklyShelfChange") == 0.5
    assert report.alarms and report.alarms[0].startswith("33.3% of showcases unchanged")
    assert (tmp_path / "showcase-latest.html").exists()


def test_showcase_command_reads_the_snapshots(redis_client, local_platform, tmp_path, capsys):
    from recsys.monitoring.__main__ import main

    store = SnapshotStore(redis_client, "recsys-dev")
    store.put("u1", TODAY, Snapshot.of({"top": ["a"]}))
    store.put("u1", TODAY - timedelta(days=1), Snapshot.of({"top": ["a"]}))
    assert main(["--stage", "dev", "showcase", "--date", TODAY.isoformat(), "--report", str(tmp_path),
                 "--redis-url", local_platform.valkey.url]) == 0
    out = capsys.readouterr().out
    assert "showcase 2024-05-08: 1 users compared, unchanged 100.0%" in out and "ShowcaseUnchangedShare = 1" in out
