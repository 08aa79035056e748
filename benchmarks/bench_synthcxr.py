"""SynthCXR rendering speed on one core, against the targets (images/s).

    .venv/bin/python benchmarks/bench_synthcxr.py

Renders random patients with random findings and devices at 64..512 px, alone and followed by
the PNG encoding the writer does (image and 16-bit masks), in one process with numpy's
threads limited to 1, and prints a markdown table. A second table writes a whole folder
(``write_synthcxr``: render, PNGs, CSVs) with one process against a pool of two. Timings
from different machines or runs are not comparable; compare rows of the same table.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: one core, as the targets assume

import argparse  # noqa: E402
import io  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from prism_aug.data.synthcxr import (  # noqa: E402
    SUPPORTED_FINDINGS,
    render,
    sample_patient,
    save_masks,
    write_synthcxr,
)
from prism_aug.data.vocabulary import DEVICES  # noqa: E402

SIZES = (64, 128, 256, 512)
TARGETS = {64: 300.0, 256: 50.0}  # render() images/s per core


def _cases(n: int) -> list:
    rng = np.random.default_rng(0)
    cases = []
    for seed in range(n):
        findings = [f for f in SUPPORTED_FINDINGS if rng.random() < 0.3]
        devices = [d for d in DEVICES if rng.random() < 0.3]
        cases.append((sample_patient(seed), findings, devices))
    return cases


def _rate(cases: list, size: int, encode: bool, seconds: float) -> float:
    """Images per second, over at least ``seconds`` of work (after one warm-up image)."""
    render(*cases[0], size)
    done, start = 0, time.perf_counter()
    while True:
        for patient, findings, devices in cases:
            rendering = render(patient, findings, devices, size)
            if encode:
                Image.fromarray(rendering.image).save(io.BytesIO(), format="PNG")
                save_masks(io.BytesIO(), rendering.masks)
            done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per cell")
    parser.add_argument("--write_patients", type=int, default=1000, help="folder size")
    args = parser.parse_args()
    cases = _cases(32)
    print("| size | render img/s | render + PNG img/s | target (render) | meets |")
    print("|---:|---:|---:|---:|:---:|")
    for size in SIZES:
        alone = _rate(cases, size, False, args.seconds)
        encoded = _rate(cases, size, True, args.seconds)
        target = TARGETS.get(size)
        meets = "-" if target is None else ("yes" if alone >= target else "NO")
        shown = "-" if target is None else f"{target:.0f}"
        print(f"| {size} | {alone:.0f} | {encoded:.0f} | {shown} | {meets} |")
    write_table(args.write_patients)


def _write_rate(n_patients: int, size: int, workers: int) -> float:
    """Images per second of ``write_synthcxr`` into a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_synthcxr(Path(tmp) / "synthcxr", n_patients, size=size, workers=workers)
        return n_patients / (time.perf_counter() - start)


def write_table(n_patients: int, size: int = 64) -> None:
    """One process against a pool of two (this machine has two cores)."""
    one = _write_rate(n_patients, size, workers=1)
    two = _write_rate(n_patients, size, workers=2)
    print(f"\n| write_synthcxr, {n_patients} patients, {size} px | img/s | speed-up |")
    print("|---|---:|---:|")
    print(f"| workers=1 | {one:.0f} | 1.00x |")
    print(f"| workers=2 | {two:.0f} | {two / one:.2f}x |")


if __name__ == "__main__":
    main()
