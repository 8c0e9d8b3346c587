"""docs/features.md, generated from the spec: `python -m recsys.features.docs [--write]`.

A test fails when the committed file differs from what the spec generates.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recsys.config import PitFeatureConfig
from recsys.features.layout import record_layout
from recsys.features.spec import COUNTER_KINDS, ENTITIES, PIT_FEATURES, FeatureSpec

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "features.md"

_ENTITY_TITLES = {
    "user": "User (`FeatureSnapshot.user`)",
    "item": "Item (`FeatureSnapshot.items[item_id]`)",
    "creator": "Creator of the item (`FeatureSnapshot.items[item_id]`)",
    "user_item": "User × item (`FeatureSnapshot.items[item_id]`)",
}


def _default(spec: FeatureSpec) -> str:
    return "`[]`" if spec.dtype == "list" else f"`{spec.default}`"


def render_markdown(config: PitFeatureConfig | None = None) -> str:
    config = config or PitFeatureConfig()
    lines = [
        "# Real-time point-in-time (PIT) features",
        "",
        "<!-- Generated from recsys/features/spec.py by `python -m recsys.features.docs --write`; do not edit. -->",
        "",
        "Written by `recsys.features.FeatureWriter` from the event stream, read by `recsys.features.FeatureReader`.",
        "See [recsys/features/README.md](../recsys/features/README.md) for the design (keys, exactly-once, windows).",
        "A feature whose key is missing reads as its default. A window of N buckets counts the N newest buckets up to",
        "the one holding `now`: it covers between N - 1 and N buckets of event time.",
        "",
    ]
    for entity in ENTITIES:
        lines += [f"## {_ENTITY_TITLES[entity]}", "", "| name | type | default | window | meaning |",
                  "| --- | --- | --- | --- | --- |"]
        for spec in PIT_FEATURES:
            if spec.entity == entity:
                window = spec.window.describe() if spec.window else ""
                lines.append(f"| `{spec.name}` | {spec.dtype} | {_default(spec)} | {window} | {spec.description} |")
        lines.append("")
    lines += ["## Counter kinds", "", "| kind | counts |", "| --- | --- |"]
    lines += [f"| `{kind}` | {meaning} |" for kind, meaning in COUNTER_KINDS.items()]
    lines += ["", "## Record sizes (default config)", "", "| record | bytes | layout fingerprint |",
              "| --- | --- | --- |"]
    for entity in ("item", "creator"):
        record = record_layout(entity, config)  # type: ignore[arg-type]
        lines.append(f"| {entity} | {record.size} | `{record.fingerprint}` |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"write {DOC_PATH} instead of printing")
    args = parser.parse_args(argv)
    text = render_markdown()
    if args.write:
        DOC_PATH.write_text(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
