"""Batch recommendations Lambda (a Step Functions task): JSON lines of users in S3 -> JSON lines of
recommendations in S3, through the same request flow as the recommend API.

Input: {"input": "s3://bucket/users.jsonl", "output": "s3://bucket/out/recs.jsonl", "numResults": 25}.
Answer: {"users": n, "written": n, "degraded": n, "errors": n, "output": "s3://..."}.
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools import Logger

from recsys.config import load_stage
from recsys.recommend.batch import run_batch_job
from recsys.recommend.service import Recommender
from recsys.recommend.wiring import recommender_from_env
from recsys.tracker.telemetry import service_name

logger = Logger(service=service_name("batch_recommendations"))


@functools.cache
def recommender() -> Recommender:
    """Built once per execution environment (the model bundle is loaded once)."""
    return recommender_from_env(load_stage())


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_batch_job(recommender(), event)
