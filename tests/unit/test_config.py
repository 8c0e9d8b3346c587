import pytest

from recsys.config import STAGES, load_stage


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_loads_with_consistent_names(stage):
    config = load_stage(stage)
    assert config.stage == stage
    assert config.names.events_topic == f"recsys-{stage}-events"
    assert config.names.feature_dlq == config.names.feature_queue + "-dlq"
    assert config.names.bucket("lake", "111122223333") == f"recsys-{stage}-lake-111122223333"


def test_visibility_timeout_is_at_least_six_times_the_writer_timeout():
    for stage in STAGES:
        writer = load_stage(stage).feature_writer
        assert writer.visibility_timeout_s >= 6 * writer.function.timeout_s


def test_prod_is_sized_up_and_retains_data():
    dev, prod = load_stage("dev"), load_stage("prod")
    assert prod.retain_data and not dev.retain_data
    assert prod.memorydb.replicas_per_shard >= 1 and prod.network.max_azs >= dev.network.max_azs


def test_unknown_stage_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown stage 'qa': expected one of dev, prod"):
        load_stage("qa")


def test_stage_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("RECSYS_STAGE", "prod")
    assert load_stage().stage == "prod"


def test_account_and_region_override():
    config = load_stage("dev", account="111122223333", region="eu-west-1")
    assert (config.account, config.region) == ("111122223333", "eu-west-1")


def test_writer_batches_above_ten_need_a_batching_window():
    from recsys.config import FeatureWriterConfig

    with pytest.raises(ValueError, match="feature_writer.batching_window_s: SQS needs >= 1 s"):
        FeatureWriterConfig(batch_size=100, batching_window_s=0)
    assert load_stage("dev").feature_writer.batching_window_s == 0
    assert load_stage("prod").feature_writer.batch_size > 10
