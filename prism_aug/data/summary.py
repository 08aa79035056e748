"""``prism-aug data summary``: what a label file holds, under the label policy in force.

The summary is a plain JSON-serialisable dict (so ``--json`` and run metadata share it) and
``format_summary`` prints it as aligned tables. Only numpy and pandas are imported: the
whole command on CheXpert's 223,414-row train.csv must take under 5 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from prism_aug.data.labels import MASKED, LabelPolicy, apply_label_policy
from prism_aug.data.records import filter_views, read_chexpert
from prism_aug.data.shortcuts import group_counts, group_key
from prism_aug.data.splits import DEFAULT_FRACTIONS, SPLITS, check_fractions, split_patients
from prism_aug.data.vocabulary import FINDINGS, PATIENT, STUDY, check_finding


def _check_pair(target: str | None, attribute: str | None) -> None:
    if (target is None) != (attribute is None):
        raise ValueError(f"give both target and attribute or neither; got {target=}, {attribute=}")
    if target is not None:
        check_finding(target)


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def summarize(
    records: pd.DataFrame,
    policy: LabelPolicy,
    target: str | None = None,
    attribute: str | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> dict:
    """Summarise records (already view-filtered) under a label policy.

    Args:
        records: a records table; ``attrs`` from the reader and ``filter_views`` supply the
            source, rows read and the view filter.
        policy: how uncertain and blank codes count.
        target: a finding y; with ``attribute``, adds the four (y, a) group counts.
        attribute: a finding, device type or ``Column=Value`` test (see shortcuts).
        fractions: train/valid/test shares of patients.

    Returns:
        A JSON-serialisable dict: source, rows_read, rows_kept, patients, studies, policy,
        findings (positive/negative/masked per finding), splits (rows and patients), and
        groups when target and attribute are given.
    """
    _check_pair(target, attribute)
    fractions = check_fractions(fractions)
    labelled = apply_label_policy(records, policy)
    labels = labelled[list(FINDINGS)].to_numpy()  # (N, 14) int8
    counts = {
        name: np.sum(labels == value, axis=0) for name, value in (("positive", 1), ("negative", 0))
    }
    counts["masked"] = np.sum(labels == MASKED, axis=0)
    split = split_patients(records[PATIENT], fractions)
    first_of_patient = ~records[PATIENT].duplicated().to_numpy()
    summary: dict = {
        "source": records.attrs.get("source"),
        "root": records.attrs.get("root"),
        "rows_read": int(records.attrs.get("rows_read", len(records))),
        "rows_kept": len(records),
        "view_filter": records.attrs.get("view_filter"),
        "patients": int(records[PATIENT].nunique()),
        "studies": int(records[STUDY].nunique()),
        "policy": policy.to_dict(),
        "findings": {
            f: {name: int(c[i]) for name, c in counts.items()} for i, f in enumerate(FINDINGS)
        },
        "splits": {
            s: {
                "rows": int(np.sum(split == s)),
                "patients": int(np.sum((split == s).to_numpy() & first_of_patient)),
            }
            for s in SPLITS
        },
        "fractions": list(fractions),
    }
    if target is not None:
        groups = group_counts(labelled, target, attribute)
        y1 = groups[group_key(1, 1)] + groups[group_key(1, 0)]
        y0 = groups[group_key(0, 1)] + groups[group_key(0, 0)]
        summary["groups"] = {
            "target": target,
            "attribute": attribute,
            "counts": groups,
            "p_a_given_y1": _rate(groups[group_key(1, 1)], y1),
            "p_a_given_y0": _rate(groups[group_key(0, 1)], y0),
        }
    return summary


def summarize_csv(
    csv: str | Path,
    root: str | Path | None = None,
    policy: LabelPolicy | None = None,
    views: Sequence[str] = ("Frontal",),
    ap_pa: str | Sequence[str] | None = None,
    target: str | None = None,
    attribute: str | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> dict:
    """Read a CheXpert-shaped CSV, filter views and summarise it: the CLI's one call.

    ``policy`` defaults to ``LabelPolicy()`` (uncertain ignored, blank as negative).
    """
    _check_pair(target, attribute)  # fail before reading a large file
    records = filter_views(read_chexpert(csv, root), views, ap_pa)
    return summarize(records, policy or LabelPolicy(), target, attribute, fractions)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Aligned text table: first column left-aligned, numbers right-aligned with commas."""
    cells = [list(header)] + [
        [f"{c:,}" if isinstance(c, int) else "-" if c is None else str(c) for c in row]
        for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(
            [
                row[0].ljust(widths[0]),
                *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)),
            ]
        )
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def format_summary(summary: dict) -> str:
    """The summary as readable, aligned tables (what ``prism-aug data summary`` prints)."""
    view_filter = summary.get("view_filter") or {}
    views = ", ".join(view_filter.get("views") or ["all"])
    ap_pa = ", ".join(view_filter.get("ap_pa") or ["any"])
    policy = summary["policy"]
    lines = [f"records: {summary['source']}  (images under {summary['root']})"]
    lines += _table(
        ["", "count"],
        [
            ["rows read", summary["rows_read"]],
            [f"rows kept (views {views}; AP/PA {ap_pa})", summary["rows_kept"]],
            ["patients", summary["patients"]],
            ["studies", summary["studies"]],
        ],
    )
    lines += ["", f"label policy: uncertain={policy['uncertain']}, blank={policy['blank']}"]
    lines += _table(
        ["finding", "positive", "negative", "masked"],
        [[f, c["positive"], c["negative"], c["masked"]] for f, c in summary["findings"].items()],
    )
    shares = "/".join(f"{f:g}" for f in summary["fractions"])
    lines += ["", f"patient-level splits ({shares})"]
    lines += _table(
        ["split", "rows", "patients"],
        [[s, c["rows"], c["patients"]] for s, c in summary["splits"].items()],
    )
    groups = summary.get("groups")
    if groups:
        counts = groups["counts"]
        lines += ["", f"groups: y = {groups['target']}, a = {groups['attribute']}"]
        rows = [
            [f"y={gy}", counts[group_key(gy, 1)], counts[group_key(gy, 0)], rate]
            for gy, rate in ((1, groups["p_a_given_y1"]), (0, groups["p_a_given_y0"]))
        ]
        lines += _table(["", "a=1", "a=0", "P(a=1|y)"], rows)
        lines.append(f"excluded (y or a uncertain, masked or blank): {counts['excluded']:,}")
    return "\n".join(lines)
