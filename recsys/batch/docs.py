"""docs/batch_features.md's feature tables, generated from the spec: `python -m recsys.batch.docs` rewrites them.

Only the part between the FEATURES markers is generated; the prose around it is written by hand.
A test fails when the document is not current.
"""

from __future__ import annotations

import re
from pathlib import Path

from recsys.batch.feature_store import FEATURE_TYPES
from recsys.batch.spec import ENTITIES, ENTITY_KEYS, FEATURES, features_of

DOC = Path(__file__).resolve().parents[2] / "docs" / "batch_features.md"
BEGIN, END = "<!-- FEATURES -->", "<!-- /FEATURES -->"
TITLES = {
    "user": "User features (`features/user/`, feature group `<prefix>-user-batch-features`)",
    "item": "Item features (`features/item/`, feature group `<prefix>-item-batch-features`)",
    "item_pair": "Item-to-item features (`features/item_pairs/`)",
    "user_item": "User×item features (training sets; `recsys.batch.derived` at serving time)",
}


def render() -> str:
    lines = [f"{len(FEATURES)} features. Generated from `recsys/batch/spec.py`; do not edit by hand.", ""]
    for entity in ENTITIES:
        keys = ", ".join(f"`{k}`" for k in ENTITY_KEYS[entity])
        lines += [
            f"### {TITLES[entity]}",
            "",
            f"Key: {keys}.",
            "",
            "| feature | type | window | meaning |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| `{f.name}` | {FEATURE_TYPES[f.dtype]} | {f.window} | {f.description.replace('|', '&#124;')} |"
            for f in features_of(entity)
        ]
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def generated_block(text: str) -> str:
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n?" + re.escape(END), text, flags=re.S)
    if match is None:
        raise ValueError(f"{DOC.name}: no {BEGIN} ... {END} block")
    return match.group(1)


def update(doc: Path = DOC) -> None:
    text = doc.read_text()
    generated_block(text)
    doc.write_text(
        re.sub(
            re.escape(BEGIN) + r"\n.*?\n?" + re.escape(END), lambda _: f"{BEGIN}\n{render()}\n{END}", text, flags=re.S
        )
    )


if __name__ == "__main__":
    update()
