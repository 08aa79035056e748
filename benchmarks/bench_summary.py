"""Time ``prism-aug data summary`` on a CheXpert-sized train.csv (target: under 5 s).

    .venv/bin/python benchmarks/bench_summary.py

Writes a synthetic CSV with CheXpert's exact columns, 223,414 rows, about 64,540 patients
with several studies each, frontal and lateral views, and per-finding code frequencies close
to CheXpert's train.csv (1.0 / 0.0 / -1.0 / blank), into a temporary folder. Then it times,
in this one run so the numbers compare: ``summarize_csv`` in-process, the whole process
(python start, imports, read, summarise) through the CLI, and a naive per-row baseline
(csv.DictReader and a regex per row) that computes the same counts. Prints a markdown table.
"""

from __future__ import annotations

import csv
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from prism_aug.data.records import CHEXPERT_COLUMNS
from prism_aug.data.splits import DEFAULT_FRACTIONS, SPLITS, patient_unit_interval
from prism_aug.data.summary import summarize_csv
from prism_aug.data.vocabulary import FINDINGS

ROWS, PATIENTS, STUDIES = 223_414, 64_540, 187_641
TARGET_S = 5.0
TARGET, ATTRIBUTE = "Pleural Effusion", "Support Devices"
# Approximate counts of (1.0, 0.0, -1.0) per finding in CheXpert's train.csv; blank the rest.
CODE_COUNTS: dict[str, tuple[int, int, int]] = {
    "No Finding": (22_381, 0, 0),
    "Enlarged Cardiomediastinum": (10_798, 21_638, 12_403),
    "Cardiomegaly": (27_000, 11_116, 8_087),
    "Lung Opacity": (105_581, 6_599, 5_598),
    "Lung Lesion": (9_186, 1_270, 1_488),
    "Edema": (52_246, 20_726, 12_984),
    "Consolidation": (14_783, 28_097, 27_742),
    "Pneumonia": (6_039, 2_799, 18_770),
    "Atelectasis": (33_376, 1_328, 33_739),
    "Pneumothorax": (19_448, 56_341, 3_145),
    "Pleural Effusion": (86_187, 35_396, 11_628),
    "Pleural Other": (3_523, 316, 2_653),
    "Fracture": (9_040, 2_512, 642),
    "Support Devices": (116_001, 6_137, 1_079),
}
CODE_TEXT = np.array(["1.0", "0.0", "-1.0", ""], dtype=object)


def write_chexpert_like(path: Path, seed: int = 0) -> None:
    """Write a CheXpert-shaped train.csv of ROWS rows (see the module docstring)."""
    rng = np.random.default_rng(seed)
    # Studies per patient: at least one, the rest skewed (some patients have dozens).
    weights = rng.exponential(size=PATIENTS)
    studies = 1 + rng.multinomial(STUDIES - PATIENTS, weights / weights.sum())
    patient_of_study = np.repeat(np.arange(1, PATIENTS + 1), studies)
    study_number = np.concatenate([np.arange(1, n + 1) for n in studies])
    # Every study has a frontal view; ROWS - STUDIES of them also have a lateral.
    lateral = np.zeros(STUDIES, bool)
    lateral[rng.choice(STUDIES, ROWS - STUDIES, replace=False)] = True
    study_of_row = np.sort(np.concatenate([np.arange(STUDIES), np.flatnonzero(lateral)]))
    is_lateral = np.r_[False, study_of_row[1:] == study_of_row[:-1]]
    patient, study = patient_of_study[study_of_row], study_number[study_of_row]
    view_name = np.where(is_lateral, "view2_lateral", "view1_frontal")
    paths = [
        f"CheXpert-v1.0-small/train/patient{p:05d}/study{s}/{v}.jpg"
        for p, s, v in zip(patient, study, view_name, strict=True)
    ]
    sex = rng.choice(["Male", "Female", "Unknown"], PATIENTS, p=[0.593, 0.4069, 0.0001])
    age = np.clip(rng.normal(61, 17, PATIENTS).round(), 18, 90).astype(int)
    columns = {
        "Path": paths,
        "Sex": sex[patient - 1],
        "Age": age[patient - 1],
        "Frontal/Lateral": np.where(is_lateral, "Lateral", "Frontal"),
        "AP/PA": np.where(is_lateral, "", rng.choice(["AP", "PA"], ROWS, p=[0.84, 0.16])),
    }
    for finding, counts in CODE_COUNTS.items():
        p = np.array([*counts, ROWS - sum(counts)]) / ROWS
        columns[finding] = CODE_TEXT[rng.choice(4, ROWS, p=p)]
    pd.DataFrame(columns).to_csv(path, index=False)


def naive_summary(csv_path: Path) -> dict:
    """The same counts the simple way: one dict per row, a regex per row, Python loops."""
    pattern = re.compile(r"(patient\d+)/(study\d+)/")
    rows_read, kept, patients, studies = 0, 0, set(), set()
    counts = {f: Counter() for f in FINDINGS}
    groups, split_of = Counter(), {}
    split_rows, split_patients = Counter(), Counter()
    bounds = np.cumsum(DEFAULT_FRACTIONS)[:-1]
    with csv_path.open(newline="") as f:
        for row in csv.DictReader(f):
            rows_read += 1
            if row["Frontal/Lateral"] != "Frontal":
                continue
            kept += 1
            patient, study = pattern.search(row["Path"]).groups()
            patients.add(patient)
            studies.add(f"{patient}/{study}")
            labels = {}
            for finding in FINDINGS:  # policy: uncertain ignored (-1), blank negative (0)
                code = row[finding]
                labels[finding] = 0 if code == "" else -1 if code == "-1.0" else int(float(code))
                counts[finding][labels[finding]] += 1
            y, a = labels[TARGET], labels[ATTRIBUTE]
            groups["excluded" if y < 0 or a < 0 else f"y={y},a={a}"] += 1
            if patient not in split_of:
                u = patient_unit_interval(patient)
                split_of[patient] = SPLITS[int(np.searchsorted(bounds, u, side="right"))]
                split_patients[split_of[patient]] += 1
            split_rows[split_of[patient]] += 1
    return {
        "rows_read": rows_read,
        "rows_kept": kept,
        "patients": len(patients),
        "studies": len(studies),
        "findings": {
            f: {"positive": c[1], "negative": c[0], "masked": c[-1]} for f, c in counts.items()
        },
        "splits": {s: {"rows": split_rows[s], "patients": split_patients[s]} for s in SPLITS},
        "groups": dict(groups),
    }


def timed(fn, repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def run_process(args: list[str]) -> None:
    subprocess.run(args, check=True, capture_output=True, cwd=Path(__file__).parent.parent)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "CheXpert-v1.0-small" / "train.csv"
        csv_path.parent.mkdir()
        start = time.perf_counter()
        write_chexpert_like(csv_path)
        print(
            f"wrote {csv_path.name}: {ROWS:,} rows, columns {list(CHEXPERT_COLUMNS)} + 14 "
            f"findings, {csv_path.stat().st_size / 2**20:.1f} MiB "
            f"in {time.perf_counter() - start:.1f} s\n"
        )

        def fast() -> dict:
            return summarize_csv(csv_path, target=TARGET, attribute=ATTRIBUTE)

        fast_s, summary = timed(fast, 3)
        naive_s, naive = timed(lambda: naive_summary(csv_path), 1)
        for key in ("rows_read", "rows_kept", "patients", "studies", "findings", "splits"):
            assert summary[key] == naive[key], f"naive and vectorised disagree on {key}"
        assert {k: v for k, v in summary["groups"]["counts"].items() if v} == naive["groups"]

        command = [sys.executable, "-m", "prism_aug.cli", "data", "summary", "--json"]
        command += ["--csv", str(csv_path), "--target", TARGET, "--attribute", ATTRIBUTE]
        cli_s, _ = timed(lambda: run_process(command), 3)
        rows = [
            ("summarize_csv, in-process (median of 3)", fast_s),
            ("naive csv.DictReader + regex per row, in-process", naive_s),
            ("whole process: prism-aug data summary --json (median of 3)", cli_s),
        ]

    print(f"| {ROWS:,}-row CheXpert-shaped CSV | time (s) | speed-up vs naive | target |")
    print("|---|---:|---:|---:|")
    for name, seconds in rows:
        speedup = f"{naive_s / seconds:.1f}x" if "in-process" in name else "-"
        verdict = "ok" if seconds < TARGET_S else "MISSED"
        print(f"| {name} | {seconds:.2f} | {speedup} | < {TARGET_S:g} s {verdict} |")


if __name__ == "__main__":
    main()
