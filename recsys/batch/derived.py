"""The derived user×item features (spec entity "user_item") on single rows, for serving.

Spark computes the same columns for training sets (recsys.batch.spark_features.add_user_item_features);
a test checks that both agree. Inputs are a user feature row and an item feature row as dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _tokens(value: Any) -> list[str]:
    return [token for token in str(value).split("|") if token] if value else []


def user_item_features(user: Mapping[str, Any], item: Mapping[str, Any]) -> dict[str, int]:
    categories = _tokens(item.get("item_categories"))
    top_category, top_creator = user.get("user_top_category"), user.get("user_top_creator")
    topics = {t.lower() for t in _tokens(user.get("user_profile_topics"))}
    return {
        "pair_category_match": int(top_category is not None and top_category in categories),
        "pair_creator_match": int(top_creator is not None and item.get("item_creator") == top_creator),
        "pair_profile_topic_match": int(any(c.lower() in topics for c in categories)),
    }
