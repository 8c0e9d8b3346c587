"""`python -m recsys.datasets COMMAND`: make development datasets and import datasets into the lake.

- `movietweetings --out DIR [--source DIR]`: convert the MovieTweetings snapshot to Personalize CSVs;
- `synthetic --out DIR [--users N --items N --events N --days N --seed N --end-time T]`: generate a dataset;
- `import SOURCE --to DEST [--min-users N ...]`: validate SOURCE (folder or s3:// prefix) and import it into the lake
  at DEST (s3://bucket[/prefix] or a folder);
- `schema NAME [--markdown]`: print a dataset's schema JSON (what Personalize's CreateSchema takes), or its table.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from recsys.config import load_stage
from recsys.datasets.errors import DatasetImportError
from recsys.datasets.importer import import_dataset
from recsys.datasets.movietweetings import DEFAULT_SOURCE_DIR, MovieTweetingsError, convert_movietweetings
from recsys.datasets.schema import SCHEMAS, field_table
from recsys.datasets.synthetic import DEFAULT_END_TIME, generate


def _movietweetings(args: argparse.Namespace) -> int:
    summary = convert_movietweetings(args.source, args.out)
    print(f"wrote {summary.interactions:,} interactions, {summary.users:,} users and {summary.items:,} items "
          f"to {summary.out_dir}")
    return 0


def _synthetic(args: argparse.Namespace) -> int:
    summary = generate(args.out, n_users=args.users, n_items=args.items, n_events=args.events, days=args.days,
                       seed=args.seed, end_time=args.end_time)
    types = ", ".join(f"{name} {count:,}" for name, count in sorted(summary.event_types.items()))
    print(f"wrote {summary.interactions:,} interactions ({types}), {summary.users:,} users and {summary.items:,} "
          f"items to {summary.out_dir}")
    return 0


def _import(args: argparse.Namespace) -> int:
    config = load_stage(args.stage).datasets
    overrides = {name: value for name in ("min_users", "min_items", "min_interactions")
                 if (value := getattr(args, name)) is not None}
    report = import_dataset(args.source, args.to, config=dataclasses.replace(config, **overrides))
    print(report.summary())
    return 0


def _schema(args: argparse.Namespace) -> int:
    schema = SCHEMAS[args.name]
    print(field_table(schema) if args.markdown else schema.to_json())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recsys.datasets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    movies = commands.add_parser("movietweetings", help="convert MovieTweetings to Personalize CSVs")
    movies.add_argument("--source", default=str(DEFAULT_SOURCE_DIR), help="snapshot folder (default: %(default)s)")
    movies.add_argument("--out", required=True, help="folder for interactions.csv, users.csv, items.csv")
    movies.set_defaults(run=_movietweetings)

    synthetic = commands.add_parser("synthetic", help="generate a synthetic dataset with planted preferences")
    synthetic.add_argument("--out", required=True, help="folder for interactions.csv, users.csv, items.csv")
    synthetic.add_argument("--users", type=int, default=2_000)
    synthetic.add_argument("--items", type=int, default=1_000)
    synthetic.add_argument("--events", type=int, default=200_000)
    synthetic.add_argument("--days", type=int, default=60)
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument("--end-time", type=int, default=DEFAULT_END_TIME, help="unix seconds (default: 2025-01-01)")
    synthetic.set_defaults(run=_synthetic)

    importer = commands.add_parser("import", help="validate a dataset and import it into the lake")
    importer.add_argument("source", help="folder or s3:// prefix with interactions.csv[, users.csv, items.csv]")
    importer.add_argument("--to", required=True, help="s3://bucket[/prefix] or a local folder")
    importer.add_argument("--stage", default=None, help="config stage of the rules (default: $RECSYS_STAGE or dev)")
    for name in ("min_users", "min_items", "min_interactions"):
        importer.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, default=None,
                              help="override the stage config's minimum")
    importer.set_defaults(run=_import)

    schema = commands.add_parser("schema", help="print a dataset's Personalize schema JSON")
    schema.add_argument("name", choices=sorted(SCHEMAS))
    schema.add_argument("--markdown", action="store_true", help="print the README's field table instead")
    schema.set_defaults(run=_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (DatasetImportError, MovieTweetingsError) as exc:
        print(exc, file=sys.stderr)
        return 2
