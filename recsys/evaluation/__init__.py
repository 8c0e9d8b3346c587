"""Offline evaluation: metrics, the baselines-vs-pipeline comparison on a time split, the report.

`recsys.evaluation.pipeline.evaluate(dataset_dir, out_dir=..., dump_recs=...)`; the command line is
`recsys.evaluation.cli` (`recsys evaluate`). Definitions: docs/evaluation.md.
"""
