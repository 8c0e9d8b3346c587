"""The recommend API on localhost: the Lambda's request flow behind a real HTTP server (`LocalHttpApi`).

    server = serve_recommend_api("build/model", redis_url="redis://127.0.0.1:6379/0",
                                 events_topic_arn=resources.events_topic_arn)
    post_json(server.url + "/recommendations", {"userId": "u1", "numResults": 10})
    server.stop()

Without `scoring_url` the inference container's server (`containers/inference/server.py`) is started as a
process on the model directory and stopped with the API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from recsys.config import RecommendConfig, load_stage
from recsys.local.http_api import LocalHttpApi
from recsys.recommend.api import RecommendApi
from recsys.recommend.scoring import HttpScorer
from recsys.recommend.service import Recommender
from recsys.recommend.wiring import build_recommender, load_serving_model, ssm_parameter_loader
from recsys.store import redis_from_url


@dataclass
class LocalRecommendApi:
    http: LocalHttpApi
    recommender: Recommender
    _stops: list[Callable[[], None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.http.url

    def stop(self) -> None:
        self.http.stop()
        self.recommender.close()
        for stop in reversed(self._stops):
            stop()

    def __enter__(self) -> "LocalRecommendApi":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_recommend_api(model_dir: str | Path, *, scoring_url: str | Mapping[str, str] | None = None,
                        redis_url: str | None = None, stage: str | None = None,
                        events_topic_arn: str | None = None, firehose_stream: str | None = None,
                        blender_parameter: str | None = None, use_feature_store: bool = True,
                        config: RecommendConfig | None = None, port: int = 0,
                        inference_workers: int = 1, concurrency: int = 8) -> LocalRecommendApi:
    """Start the recommend API on 127.0.0.1:`port` (0: a free port) and return it (`.url`, `.stop()`).

    - model_dir: a bundle directory the local pipeline deployed (`recsys.ranking.bundle`);
    - scoring_url: a running inference server (or variant -> URL); None starts one on `model_dir`;
    - redis_url: the local Valkey (PIT features, item metadata, filters, impressions, snapshots, and the Feature
      Store stand-in when `use_feature_store`); None serves without them (responses are not degraded);
    - events_topic_arn / firehose_stream: the event tracker's sinks for impression events (moto);
    - blender_parameter: the SSM parameter of the blender rules (on moto), read every `blender_reload_s`;
    - concurrency: requests served at once, as by that many Lambda execution environments (the request flow is
      thread-safe), so that one slow request does not hold up the others.
    """
    from recsys.batch.feature_store import LocalFeatureStore, feature_groups
    from recsys.tracker.sinks import SnsEventPublisher, archive_for

    stage_config = load_stage(stage)
    stops: list[Callable[[], None]] = []
    if scoring_url is None:
        from containers.inference.server import start_local_server

        scoring_url, stop_server = start_local_server(model_dir, workers=inference_workers)
        stops.append(stop_server)
    recommend_config = config or stage_config.recommend
    client = redis_from_url(redis_url, timeout_s=recommend_config.store_timeout_ms / 1000.0, retries=1) \
        if redis_url else None
    feature_store = LocalFeatureStore(client, feature_groups(stage_config.names)) if client and use_feature_store \
        else None
    sinks = []
    if events_topic_arn:
        sinks.append(SnsEventPublisher(events_topic_arn))
    if firehose_stream:
        sinks.append(archive_for(firehose_stream))
    recommender = build_recommender(
        stage_config, load_serving_model(model_dir),
        HttpScorer(scoring_url, recommend_config.endpoint_timeout_ms / 1000.0), redis_client=client,
        feature_store=feature_store, sinks=tuple(sinks),
        blender_loader=ssm_parameter_loader(blender_parameter) if blender_parameter else None,
        config=recommend_config, background=True)
    api = RecommendApi(recommender)
    http = LocalHttpApi(lambda event, context: api.handle_apigateway(event),
                        function_name=stage_config.names.function("recommend"), port=port, concurrency=concurrency)
    return LocalRecommendApi(http.start(), recommender, stops)
