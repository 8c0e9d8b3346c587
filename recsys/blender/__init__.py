"""The KION blender: assembles a showcase from ranked ML shelves under runtime-tunable business rules.

    from recsys.blender import BlendRequest, BlenderConfig, ShelfInput, Candidate, blend
    showcase = blend(BlendRequest(user_id="u1", day=date.today(), now=time.time(), platform="web",
                                  shelves=[ShelfInput("top", [Candidate("i1", 0.9, "exploit")])]), BlenderConfig())

See README.md for every rule, its config keys and defaults, and its invariant.
"""

from recsys.blender.config import BlenderConfig, ConfigError, HotReloadingConfig, layouts_from_cms
from recsys.blender.model import (
    BlendRequest,
    Candidate,
    Exposure,
    ItemInfo,
    PlacedItem,
    RuleEvent,
    Shelf,
    ShelfInput,
    Showcase,
    WatchState,
)
from recsys.blender.pipeline import blend, fingerprint

__all__ = [
    "BlendRequest",
    "BlenderConfig",
    "Candidate",
    "ConfigError",
    "Exposure",
    "HotReloadingConfig",
    "ItemInfo",
    "PlacedItem",
    "RuleEvent",
    "Shelf",
    "ShelfInput",
    "Showcase",
    "WatchState",
    "blend",
    "fingerprint",
    "layouts_from_cms",
]
