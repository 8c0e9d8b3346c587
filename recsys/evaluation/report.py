"""The evaluation report on disk: report.json (the pipeline's quality gate reads it), report.html and PNG plots."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

# Baselines first, then the pipeline variants (report.json sorts keys alphabetically).
SYSTEM_ORDER = ("popularity", "trending", "item_knn", "ease", "pipeline", "pipeline_rf")
TABLE_METRICS = ("precision", "recall", "map", "ndcg", "mrr", "hit_rate", "coverage", "novelty", "new_item_share",
                 "serendipity")


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def ordered_systems(report: dict[str, Any]) -> list[str]:
    known = [s for s in SYSTEM_ORDER if s in report["ranking"]]
    return known + sorted(set(report["ranking"]) - set(known))


def ranking_table_markdown(report: dict[str, Any], k: int) -> str:
    """The systems side by side at one K, as a Markdown table (docs and README use it)."""
    header = "| system | " + " | ".join(TABLE_METRICS) + " |"
    lines = [header, "|" + " --- |" * (len(TABLE_METRICS) + 1)]
    for system in ordered_systems(report):
        row = report["ranking"][system][f"@{k}"]
        lines.append(f"| {system} | " + " | ".join(_fmt(row[m]) for m in TABLE_METRICS) + " |")
    return "\n".join(lines)


def _plot_reliability(report: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    for name, metrics in report["classification"].items():
        curve = metrics["reliability"]
        if curve["predicted"]:
            line, = ax.plot(curve["predicted"], curve["observed"], label=f"{name} (ECE {metrics['ece']:.3f})")
            # Marker area grows with the bin's row count: sparse bins are visibly less reliable.
            ax.scatter(curve["predicted"], curve["observed"], s=[8 + 6 * np.log10(c) ** 2 for c in curve["counts"]],
                       color=line.get_color())
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title("Reliability (marker area ~ rows in bin)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_metric_by_k(report: dict[str, Any], metric: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for system in ordered_systems(report):
        by_k = report["ranking"][system]
        ks = sorted(int(k[1:]) for k in by_k)
        ax.plot(ks, [by_k[f"@{k}"][metric] for k in ks], marker="o", label=system)
    ax.set_xlabel("K")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} at K")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "html": out_dir / "report.html",
             "reliability": out_dir / "reliability.png", "ndcg": out_dir / "ndcg_at_k.png",
             "recall": out_dir / "recall_at_k.png"}
    paths["json"].write_text(json.dumps(report, indent=2, sort_keys=True))
    _plot_reliability(report, paths["reliability"])
    _plot_metric_by_k(report, "ndcg", paths["ndcg"])
    _plot_metric_by_k(report, "recall", paths["recall"])
    conditions = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
                         for k, v in report["conditions"].items())
    tables = []
    for k in report["conditions"]["ks"]:
        head = "".join(f"<th>{m}</th>" for m in TABLE_METRICS)
        body = "".join(
            f"<tr><th>{html.escape(system)}</th>" + "".join(f"<td>{_fmt(by_k[f'@{k}'][m])}</td>" for m in TABLE_METRICS)
            + "</tr>" for system in ordered_systems(report) for by_k in [report["ranking"][system]])
        tables.append(f"<h3>K = {k}</h3><table><tr><th>system</th>{head}</tr>{body}</table>")
    cls_head = "".join(f"<th>{m}</th>" for m in ("rows", "positive_rate", "mean_probability", "auc", "pr_auc",
                                                  "log_loss", "brier", "ece"))
    cls_body = "".join(
        f"<tr><th>{name}</th>" + "".join(f"<td>{_fmt(m[c])}</td>" for c in ("rows", "positive_rate",
                                                                           "mean_probability", "auc", "pr_auc",
                                                                           "log_loss", "brier", "ece")) + "</tr>"
        for name, m in report["classification"].items())
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>recsys offline evaluation</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1em}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th{{background:#f4f4f4}}</style></head>
<body><h1>Offline evaluation</h1>
<h2>Conditions</h2><table>{conditions}</table>
<h2>Ranking</h2>{''.join(tables)}
<img src="{paths['ndcg'].name}" alt="NDCG at K"> <img src="{paths['recall'].name}" alt="recall at K">
<h2>Probabilities (pipeline, every candidate of every test user)</h2>
<table><tr><th>head</th>{cls_head}</tr>{cls_body}</table>
<img src="{paths['reliability'].name}" alt="reliability curve">
<p>Definitions: docs/evaluation.md.</p></body></html>"""
    paths["html"].write_text(page)
    return paths
