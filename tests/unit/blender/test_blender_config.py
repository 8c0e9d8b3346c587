"""BlenderConfig validation (errors name the field) and hot reloading (keeps the last good config)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.blender import BlenderConfig, ConfigError, HotReloadingConfig


def test_defaults_are_valid_and_round_trip_through_json():
    config = BlenderConfig()
    assert config.dedup.top_n == 5 and config.spacing.coefficient == 1 and config.boost.max_per_shelf == 1
    data = {
        "spacing": {"coefficient": 2},
        "placement": {"layouts": {"web": ["a", "b"]}, "overrides": [{"arm": "B", "shelf_id": "a", "position": 2}]},
        "quota": {"max_paid_share_per_page": 0.3},
    }
    config = BlenderConfig.from_json(json.dumps(data))
    assert config.spacing.coefficient == 2
    assert config.placement.layouts["web"] == ("a", "b")
    assert config.placement.overrides[0].position == 2 and config.placement.overrides[0].audience == "any"
    assert config.quota.max_paid_share_per_page == 0.3 and config.quota.max_paid_per_page is None
    # to_json is what the SSM parameter holds (CDK and local mode): it reads back equal.
    assert BlenderConfig.from_json(config.to_json()) == config
    assert BlenderConfig.from_json(BlenderConfig().to_json()) == BlenderConfig()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"bost": {}},
            "bost: unknown field (known: boost, placement, dedup, watched, spacing, quota, not_interested, shelves, "
            "fingerprint)",
        ),
        ({"boost": {"max_per_shelf": -1}}, "boost.max_per_shelf: must be >= 0, got -1"),
        ({"boost": {"max_per_shelf": True}}, "boost.max_per_shelf: expected an integer, got True (bool)"),
        ({"boost": {"ctr_ratio_threshold": "2"}}, "boost.ctr_ratio_threshold: expected a number, got '2' (str)"),
        ({"boost": {"ctr_ratio_threshold": 0.5}}, "boost.ctr_ratio_threshold: must be >= 1.0, got 0.5"),
        ({"boost": {"enabled": 1}}, "boost.enabled: expected true or false, got 1 (int)"),
        ({"boost": []}, "boost: expected an object, got [] (list)"),
        (
            {"not_interested": {"demote_after": 4, "exclude_after": 2}},
            "not_interested.exclude_after: must be >= demote_after (4), got 2",
        ),
        ({"watched": {"min_progress": 0.95}}, "watched.min_progress: must be < watched_threshold (0.9), got 0.95"),
        ({"quota": {"max_paid_share_per_shelf": 1.5}}, "quota.max_paid_share_per_shelf: must be <= 1.0, got 1.5"),
        ({"spacing": {"coefficient": 1.5}}, "spacing.coefficient: expected an integer, got 1.5 (float)"),
        (
            {"placement": {"layouts": {"web": ["a", 3]}}},
            "placement.layouts.web[1]: expected a non-empty string, got 3 (int)",
        ),
        ({"placement": {"layouts": {"web": ["a", "a"]}}}, "placement.layouts.web: lists a shelf twice"),
        ({"placement": {"layouts": {"web": "a,b"}}}, "placement.layouts.web: expected a list, got 'a,b' (str)"),
        (
            {"placement": {"overrides": [{"arm": "B", "position": 1}]}},
            "placement.overrides[0].shelf_id: required field is missing",
        ),
        (
            {"placement": {"overrides": [{"arm": "B", "shelf_id": "x", "position": 0}]}},
            "placement.overrides[0].position: must be >= 1, got 0",
        ),
        (
            {"placement": {"overrides": [{"arm": "B", "shelf_id": "x", "position": 1, "audience": "kids"}]}},
            "placement.overrides[0].audience: expected one of any, anonymous, signed_in, got 'kids'",
        ),
        ({"shelves": {"shuffled": [""]}}, "shelves.shuffled[0]: expected a non-empty string, got '' (str)"),
        ({"fingerprint": {"visible_items": 0}}, "fingerprint.visible_items: must be >= 1, got 0"),
        ([], "config: expected an object, got [] (list)"),
    ],
)
def test_validation_errors_name_the_field(data, message):
    with pytest.raises(ConfigError) as caught:
        BlenderConfig.from_dict(data)
    assert str(caught.value) == message


def test_invalid_json_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^config: invalid JSON: Expecting"):
        BlenderConfig.from_json("{nope")


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda kids: (
            st.lists(kids, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "boost",
                        "spacing",
                        "coefficient",
                        "quota",
                        "max_paid_per_shelf",
                        "placement",
                        "layouts",
                        "web",
                        "overrides",
                        "x",
                    ]
                ),
                kids,
                max_size=3,
            )
        ),
        max_leaves=8,
    )
)
def test_any_json_value_either_builds_a_config_or_raises_config_error(data):
    try:
        BlenderConfig.from_dict(data)
    except ConfigError as error:
        assert error.path and error.message


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_hot_reload_rereads_after_the_ttl_and_keeps_the_last_good_config():
    clock, source = Clock(), {"text": '{"spacing": {"coefficient": 2}}'}
    reads = []

    def loader():
        reads.append(clock.now)
        if isinstance(source["text"], Exception):
            raise source["text"]
        return source["text"]

    config = HotReloadingConfig(loader, ttl_s=30, clock=clock)
    assert config.get().spacing.coefficient == 2 and reads == [0.0]
    source["text"] = '{"spacing": {"coefficient": 3}}'
    clock.now = 29.9
    assert config.get().spacing.coefficient == 2 and reads == [0.0]  # within the TTL: no read
    clock.now = 30.0
    assert config.get().spacing.coefficient == 3
    source["text"] = '{"spacing": {"coefficient": -1}}'
    clock.now = 60.0
    assert config.get().spacing.coefficient == 3  # invalid: the last good one stays
    assert config.last_error == "ConfigError: spacing.coefficient: must be >= 0, got -1" and config.failures == 1
    source["text"] = ConnectionError("ssm unreachable")
    clock.now = 90.0
    assert config.get().spacing.coefficient == 3 and config.last_error == "ConnectionError: ssm unreachable"
    source["text"] = {"spacing": {"coefficient": 0}}  # a loader may return parsed data
    clock.now = 120.0
    assert config.get().spacing.coefficient == 0 and config.last_error is None and config.loaded_at == 120.0


def test_hot_reload_serves_the_initial_config_until_a_good_one_loads():
    clock = Clock()
    initial = BlenderConfig.from_dict({"dedup": {"top_n": 2}})
    config = HotReloadingConfig(lambda: "not json", ttl_s=10, initial=initial, clock=clock)
    assert config.get() is initial and config.last_error.startswith("ConfigError: config: invalid JSON")
    with pytest.raises(ValueError, match="ttl_s: must be >= 0, got -1"):
        HotReloadingConfig(lambda: "{}", ttl_s=-1)
