"""Tables and a bar chart of classifier results: one row per run, one line per method.

Results are a DataFrame with columns ``method``, ``seed`` and the test metrics (as
``GroupMetrics`` names them); the runners append to it run by run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

METRICS: tuple[str, ...] = (
    "mean_acc",
    "worst_group_acc",
    "mean_group_acc",
    "balanced_acc",
    "auroc",
    "min_auroc_within_a",
    "ece",
    "shortcut_reliance",
)


def test_metrics(callback_metrics: Mapping[str, Any]) -> dict[str, float]:
    """A run's ``test/<metric>`` values (a trainer's ``callback_metrics``), unprefixed."""
    return {
        key.removeprefix("test/"): float(value)
        for key, value in callback_metrics.items()
        if key.startswith("test/")
    }


def load_results(path: Path) -> pd.DataFrame:
    """The rows a runner wrote so far (an empty table on the first run)."""
    return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["method", "seed"])


def append_result(results: pd.DataFrame, row: dict[str, Any], path: Path) -> pd.DataFrame:
    """``results`` with ``row`` added, saved to ``path`` at once (a rerun resumes from it)."""
    results = pd.concat([results, pd.DataFrame([row])], ignore_index=True)
    results.to_csv(path, index=False)
    return results


def in_method_order(results: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """``results`` sorted by each row's place in ``methods``, then by seed (runners append
    rows as fits finish; tables and CSVs list them in the runner's order)."""
    rank = {method: i for i, method in enumerate(methods)}
    return results.sort_values(
        ["method", "seed"], key=lambda c: c.map(rank) if c.name == "method" else c, kind="stable"
    )


def _cell(mean: float, sd: float, metric: str) -> str:
    """Accuracies and AUROCs in percent; ECE and shortcut reliance as probabilities."""
    if metric in ("ece", "shortcut_reliance"):
        return f"{mean:.3f} ± {sd:.3f}"
    return f"{100 * mean:.1f} ± {100 * sd:.1f}"


def summarise(results: pd.DataFrame, chart: Path) -> str:
    """Mean and s.d. over seeds per method as a markdown table; draws the worst-group and
    mean accuracy of each method into the PNG ``chart``."""
    order = list(dict.fromkeys(results["method"]))
    results = results.reindex(columns=list(dict.fromkeys([*results.columns, *METRICS])))
    grouped = results.groupby("method")[list(METRICS)]  # a metric no run logged is blank
    mean, sd = grouped.mean().loc[order], grouped.std(ddof=1).loc[order]
    seeds = results.groupby("method")["seed"].nunique().loc[order]
    header = "| method | seeds | " + " | ".join(METRICS) + " |"
    lines = [header, "|---|---:|" + "---:|" * len(METRICS)]
    for method in order:
        cells = [_cell(mean.at[method, m], sd.at[method, m], m) for m in METRICS]
        lines.append(f"| {method} | {seeds[method]} | " + " | ".join(cells) + " |")
    figure, axis = plt.subplots(figsize=(9, 4))
    axis.bar(order, 100 * mean["worst_group_acc"], yerr=100 * sd["worst_group_acc"].fillna(0))
    axis.bar(order, 100 * mean["mean_acc"], fill=False, edgecolor="gray", label="mean accuracy")
    axis.set_ylabel("worst-group accuracy (%)")
    axis.tick_params(axis="x", rotation=45)
    axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    figure.savefig(chart, dpi=120)
    plt.close(figure)
    return "\n".join(lines)
