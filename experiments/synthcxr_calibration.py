"""Show that SynthCXR's default study has the shortcut problem it is meant to have.

    make calibrate
    # or, on folders written by `prism-aug data synthcxr`:
    python experiments/synthcxr_calibration.py --data data/synthcxr \
        --balanced_data data/synthcxr_balanced --epochs 6 --seeds 0

Trains the same small timm model (resnet18, 1 channel, 64 px) twice per seed: with ERM on
the default train set, where Support Devices predicts Pleural Effusion 90/10, and on a
group-balanced train set of the same size. Both are tested on the group-balanced test set.
The renderer is calibrated when ERM's worst-group accuracy sits at least 15 points below its
mean, while the balanced model reaches at least 80% worst-group accuracy (the finding is
learnable; the device is only the easier cue).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from prism_aug.data.records import load_image, read_chexpert
from prism_aug.data.shortcuts import group_counts

TARGET, ATTRIBUTE = "Pleural Effusion", "Support Devices"
GROUPS = ((0, 0), (0, 1), (1, 0), (1, 1))  # (y, a)


def load_split(folder: Path, split: str) -> TensorDataset:
    """Images as (N, 1, H, W) float in [-1, 1], targets (N,) and group index (N,) = 2y + a."""
    records = read_chexpert(folder / f"{split}.csv")
    root = records.attrs["root"]
    images = np.stack([load_image(root, path) for path in records["path"]])
    x = torch.from_numpy(images).float().div(127.5).sub(1.0).unsqueeze(1)
    y = torch.from_numpy(records[TARGET].to_numpy(dtype=np.int64))
    a = torch.from_numpy(records[ATTRIBUTE].to_numpy(dtype=np.int64))
    return TensorDataset(x, y, 2 * y + a)


def train_one_epoch(model, loader, optimizer) -> float:
    model.train()
    total = 0.0
    for x, y, _ in loader:
        loss = F.binary_cross_entropy_with_logits(model(x).squeeze(1), y.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y)
    return total / len(loader.dataset)


@torch.no_grad()
def evaluate(model, dataset: TensorDataset) -> dict[str, float]:
    """Mean accuracy, accuracy per (y, a) group and the worst group, in percent."""
    model.eval()
    x, y, g = dataset.tensors
    correct = torch.cat(
        [
            (model(xb).squeeze(1) > 0).long() == yb
            for xb, yb in zip(x.split(256), y.split(256), strict=True)
        ]
    )
    result = {"mean_acc": 100 * correct.float().mean().item()}
    for index, (gy, ga) in enumerate(GROUPS):
        result[f"acc_y{gy}_a{ga}"] = 100 * correct[g == index].float().mean().item()
    result["worst_group_acc"] = min(result[f"acc_y{gy}_a{ga}"] for gy, ga in GROUPS)
    return result


def fit(train: TensorDataset, test: TensorDataset, epochs: int, seed: int, lr: float) -> dict:
    torch.manual_seed(seed)
    model = timm.create_model("resnet18", pretrained=False, in_chans=1, num_classes=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(train, batch_size=64, shuffle=True, generator=generator, drop_last=True)
    start = time.perf_counter()
    for _ in range(epochs):
        train_one_epoch(model, loader, optimizer)
    return {**evaluate(model, test), "train_seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/synthcxr"))
    parser.add_argument("--balanced_data", type=Path, default=Path("data/synthcxr_balanced"))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("outputs/calibration/results.json"))
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    test = load_split(args.data, "test")
    train_sets = {
        "ERM, default train (90/10)": load_split(args.data, "train"),
        "ERM, group-balanced train": load_split(args.balanced_data, "train"),
    }
    for name, folder in (("default", args.data), ("balanced", args.balanced_data)):
        counts = group_counts(read_chexpert(folder / "train.csv"), TARGET, ATTRIBUTE)
        print(f"{name} train groups: {counts}")

    rows = []
    for seed in args.seeds:
        for name, train in train_sets.items():
            result = fit(train, test, args.epochs, seed, args.lr)
            rows.append({"train_set": name, "seed": seed, **result})
            print(json.dumps(rows[-1]))

    print(
        "\n| train set | seed | mean acc | worst-group acc | gap | groups (y0a0 y0a1 y1a0 y1a1) |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        groups = " ".join(f"{row[f'acc_y{gy}_a{ga}']:.1f}" for gy, ga in GROUPS)
        gap = row["mean_acc"] - row["worst_group_acc"]
        print(
            f"| {row['train_set']} | {row['seed']} | {row['mean_acc']:.1f} | "
            f"{row['worst_group_acc']:.1f} | {gap:.1f} | {groups} |"
        )
    print("\n| train set | seeds | mean acc | worst-group acc | gap |")
    print("|---|---|---|---|---|")
    for name in train_sets:
        runs = [row for row in rows if row["train_set"] == name]
        mean, worst = (np.array([row[k] for row in runs]) for k in ("mean_acc", "worst_group_acc"))
        print(
            f"| {name} | {len(runs)} | {mean.mean():.1f} ± {mean.std(ddof=1):.1f} | "
            f"{worst.mean():.1f} ± {worst.std(ddof=1):.1f} | {(mean - worst).mean():.1f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
