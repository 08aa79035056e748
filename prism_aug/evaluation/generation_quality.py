"""Does the fine-tuned model draw what its prompt says? Judged by an independent oracle.

    prism-aug finetune-quality --model outputs/models/synthcxr_tiny \
        --oracle outputs/models/oracle --real_csv data/synthcxr_finetune/test.csv

1. Prompt accuracy: for every combination of the judged attributes (Support Devices,
   Pleural Effusion, Cardiomegaly present or absent: 8 prompts), sample n images with fixed
   seeds; the oracle's call (p > 0.5) must match the prompted state. Reported per attribute
   over all conditions, and per condition.
2. Frechet distance in the oracle's feature space between images generated from the captions
   of one half of the real set and the images of the other half, beside the same distance
   between the two real halves (the floor: what sampling noise alone gives at that size).

The judge is passed in (``Judge``: any classifier with the oracle's interface), so this
module only samples and counts.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from prism_aug.data.prompts import caption, captions
from prism_aug.data.records import load_image, read_chexpert
from prism_aug.diffusion.components import SDComponents
from prism_aug.diffusion.sampling import sample_images

JUDGED_ATTRIBUTES: tuple[str, ...] = ("Support Devices", "Pleural Effusion", "Cardiomegaly")


class Judge(Protocol):
    """What the quality check needs of a classifier (``prism_aug.evaluation.Oracle``)."""

    attributes: tuple[str, ...]

    def predict_proba(self, images: np.ndarray) -> torch.Tensor:
        """uint8 ``(B, H, W)`` -> probabilities ``(B, len(attributes))``."""
        ...

    def features(self, images: np.ndarray) -> torch.Tensor:
        """uint8 ``(B, H, W)`` -> features ``(B, D)``."""
        ...


@dataclass(frozen=True)
class QualityReport:
    """Prompt accuracies and Frechet distances of one model.

    Attributes:
        accuracy: attribute -> share of all samples whose oracle call matches the prompt.
        per_condition: prompt -> attribute -> accuracy on that prompt's samples.
        samples_per_condition: n.
        frechet_generated: FD(generated from half B's captions, real half A).
        frechet_real_halves: FD(real half B, real half A), the floor.
        real_half_size: images per half.
    """

    accuracy: dict[str, float]
    per_condition: dict[str, dict[str, float]]
    samples_per_condition: int
    frechet_generated: float
    frechet_real_halves: float
    real_half_size: int

    def markdown(self) -> str:
        """The report as markdown tables."""
        lines = ["| attribute | accuracy |", "|---|---|"]
        lines += [f"| {a} | {v:.3f} |" for a, v in self.accuracy.items()]
        attrs = list(self.accuracy)
        lines += ["", "| prompt | " + " | ".join(attrs) + " |", "|---" * (len(attrs) + 1) + "|"]
        for prompt, accs in self.per_condition.items():
            lines.append(f"| {prompt} | " + " | ".join(f"{accs[a]:.2f}" for a in attrs) + " |")
        lines += [
            "",
            f"Frechet distance (oracle features, {self.real_half_size} vs {self.real_half_size}): "
            f"generated {self.frechet_generated:.3f}, real halves {self.frechet_real_halves:.3f}",
        ]
        return "\n".join(lines)


def prompt_conditions(attributes: Sequence[str] = JUDGED_ATTRIBUTES) -> list[dict[str, int]]:
    """Every present/absent combination of the attributes (2 ** k states, all absent first)."""
    return [
        dict(zip(attributes, bits, strict=True))
        for bits in itertools.product((0, 1), repeat=len(attributes))
    ]


def frechet_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """||mu_x - mu_y||^2 + tr(S_x + S_y - 2 (S_x^1/2 S_y S_x^1/2)^1/2) of features ``(N, D)``.

    The matrix square root goes through symmetric eigendecompositions (float64), which are
    exact for the symmetric PSD matrices involved.
    """
    x, y = x.double(), y.double()
    mu_x, mu_y = x.mean(0), y.mean(0)
    s_x, s_y = torch.cov(x.T), torch.cov(y.T)
    w, v = torch.linalg.eigh(s_x)
    root_x = (v * w.clamp_min(0).sqrt()) @ v.T
    cross = torch.linalg.eigvalsh(root_x @ s_y @ root_x).clamp_min(0).sqrt().sum()
    return float((mu_x - mu_y).pow(2).sum() + s_x.trace() + s_y.trace() - 2 * cross)


def prompt_accuracy(
    judge: Judge,
    components: SDComponents,
    n: int,
    attributes: Sequence[str] = JUDGED_ATTRIBUTES,
    steps: int = 20,
    guidance: float = 3.0,
    batch_size: int = 100,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Sample n images per condition (seeds 0..n-1 for every condition) and judge them."""
    missing = [a for a in attributes if a not in judge.attributes]
    if missing:
        raise ValueError(f"the judge has no output {missing}; it has {list(judge.attributes)}")
    columns = [judge.attributes.index(a) for a in attributes]
    hits, per_condition = [], {}
    for state in prompt_conditions(attributes):
        prompt = caption({a: float(v) for a, v in state.items()})
        images = sample_images(
            components, [prompt] * n, list(range(n)), steps, guidance, batch_size, True
        )
        called = (judge.predict_proba(images)[:, columns] > 0.5).numpy()  # (n, k)
        correct = called == np.array([state[a] for a in attributes], dtype=bool)
        hits.append(correct)
        per_condition[prompt] = dict(zip(attributes, correct.mean(0).tolist(), strict=True))
    accuracy = dict(zip(attributes, np.concatenate(hits).mean(0).tolist(), strict=True))
    return accuracy, per_condition


def evaluate(
    judge: Judge,
    components: SDComponents,
    real_csv: str | Path,
    samples_per_condition: int = 200,
    steps: int = 20,
    guidance: float = 3.0,
    batch_size: int = 100,
) -> QualityReport:
    """Prompt accuracy and Frechet distances of a model against the real records of a CSV."""
    accuracy, per_condition = prompt_accuracy(
        judge, components, samples_per_condition, JUDGED_ATTRIBUTES, steps, guidance, batch_size
    )
    records = read_chexpert(real_csv)
    real = np.stack([load_image(records.attrs["root"], p) for p in records["path"]])
    half = len(records) // 2
    texts = captions(records).tolist()
    generated = sample_images(
        components, texts[half : 2 * half], list(range(half)), steps, guidance, batch_size, True
    )
    features_a = judge.features(real[:half])
    fd_generated = frechet_distance(judge.features(generated), features_a)
    fd_real = frechet_distance(judge.features(real[half : 2 * half]), features_a)
    return QualityReport(
        accuracy, per_condition, samples_per_condition, fd_generated, fd_real, half
    )


def write_report(report: QualityReport, path: Path) -> Path:
    """Save the report as JSON (and print nothing: the caller decides)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(report), indent=2))
    return path
