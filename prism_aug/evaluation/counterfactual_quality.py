"""How good are counterfactual edits? Effectiveness, preservation and realism on SynthCXR.

An edit touches 2-6% of the pixels, so whole-image distances flatter doing nothing (the
unedited source already scores SSIM 0.9 to the ground truth). Every number here is therefore
taken where it means something, and printed beside reference rows:

- effectiveness: the oracle sees the edited attribute flip from the source's state to the
  target's (flip rate; a source it misjudges counts as a failure), the mean probability shift
  towards the target, PRISM's prediction gain |p(x) - p(x_cf)|; for removals, the share
  of the true change recovered inside the ground-truth change mask M,
  ``1 - L1(x_cf, x_gt) / L1(x_src, x_gt)`` (0 for doing nothing, 1 for the ground truth);
- preservation: PSNR and SSIM to the source outside M dilated by ``DILATION`` px (the editor
  never sees M); the rate at which the oracle sees any other attribute change; SSIM, PSNR and
  L1 to the ground truth;
- additions: the ground truth is one of many valid placements, so an addition is judged by the
  oracle, by preservation, and by its changed area (pixels changed by more than the image
  noise) relative to the ground truth's;
- realism: Frechet distance of the oracle's features to real images.

Reference rows: ``identity`` (the source unchanged), ``ground truth`` (the true counterfactual:
the most a method can score under this judge, which misreads some true counterfactuals too)
and, per method, ``ground-truth mask blend`` (the source outside M, the method's output inside).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from prism_aug.data.prompts import EditSpec
from prism_aug.editing.verifier import AttributeClassifier, judged_attribute, may_change
from prism_aug.evaluation.generation_quality import frechet_distance

DILATION = 2  # px around M excluded from "outside the change"
CHANGE_NOISE = 12  # grey levels: a pixel changed by more is part of the changed area


class FeatureJudge(AttributeClassifier, Protocol):
    """The oracle: attribute probabilities, and features for Frechet distances."""

    def features(self, images: np.ndarray) -> torch.Tensor: ...


@dataclass
class EditSet:
    """Edits of one kind made by one method, with their SynthCXR ground truth.

    Attributes:
        edit: the edit, the same for every image.
        sources: uint8 ``(N, H, W)``.
        counterfactuals: uint8 ``(N, H, W)``, the method's outputs.
        truths: uint8 ``(N, H, W)``, the true counterfactuals.
        masks: bool ``(N, H, W)``, M: pixels where source and truth differ.
    """

    edit: EditSpec
    sources: np.ndarray
    counterfactuals: np.ndarray
    truths: np.ndarray
    masks: np.ndarray


def dilate(masks: np.ndarray, pixels: int) -> np.ndarray:
    """Bool masks ``(N, H, W)`` grown by ``pixels`` in every direction (a square)."""
    x = torch.from_numpy(masks.astype(np.float32)).unsqueeze(1)
    grown = F.max_pool2d(x, 2 * pixels + 1, stride=1, padding=pixels)
    return grown[:, 0].numpy() > 0


def change_recovered(sources, counterfactuals, truths, masks) -> np.ndarray:
    """Per image, ``1 - L1(x_cf, x_gt) / L1(x_src, x_gt)`` inside M (NaN where M is empty)."""
    src, cf, gt = (a.astype(np.float64) for a in (sources, counterfactuals, truths))
    before = (np.abs(src - gt) * masks).sum(axis=(1, 2))
    after = (np.abs(cf - gt) * masks).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(before > 0, 1.0 - after / before, np.nan)


def masked_psnr(a: np.ndarray, b: np.ndarray, keep: np.ndarray) -> float:
    """PSNR (dB, peak 255) of the squared error over every image's pixels where ``keep``.

    Pooled over the set rather than averaged per image: one image left untouched there
    would make a mean of per-image PSNRs infinite. Infinite only when all are identical.
    """
    se = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = (se * keep).sum() / max(keep.sum(), 1)
    with np.errstate(divide="ignore"):
        return float(10.0 * np.log10(255.0**2 / mse))


def masked_ssim(a: np.ndarray, b: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Per image mean of torchmetrics' SSIM map over the pixels where ``keep``."""
    x = torch.from_numpy(a.astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(b.astype(np.float32) / 255.0).unsqueeze(1)
    _, ssim_map = structural_similarity_index_measure(
        x, y, data_range=1.0, reduction="none", return_full_image=True
    )
    ssim_map = ssim_map[:, 0].numpy()
    return (ssim_map * keep).sum(axis=(1, 2)) / np.maximum(keep.sum(axis=(1, 2)), 1)


def changed_area(a: np.ndarray, b: np.ndarray, noise: int = CHANGE_NOISE) -> np.ndarray:
    """Per image count of pixels where ``|a - b| > noise`` grey levels."""
    return (np.abs(a.astype(np.int16) - b.astype(np.int16)) > noise).sum(axis=(1, 2))


def mask_blend(sources: np.ndarray, counterfactuals: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The ground-truth mask blend: the source outside M, the counterfactual inside."""
    return np.where(masks, counterfactuals, sources)


def distances(outputs: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """PSNR (pooled over the set), mean SSIM and mean L1 of outputs to references, over every
    pixel."""
    everywhere = np.ones(references.shape, dtype=bool)
    return {
        "psnr": masked_psnr(outputs, references, everywhere),
        "ssim": float(masked_ssim(outputs, references, everywhere).mean()),
        "l1": float(np.abs(outputs.astype(np.float64) - references).mean()),
    }


def _mean(values: np.ndarray) -> float:
    """Mean over the images where the metric is defined (not NaN); inf stays inf."""
    defined = np.asarray(values, dtype=np.float64)
    defined = defined[~np.isnan(defined)]
    return float(defined.mean()) if len(defined) else float("nan")


def edit_metrics(
    oracle: FeatureJudge, edits: EditSet, real_features: torch.Tensor | None = None
) -> dict[str, float]:
    """Every metric of the module docstring for one set of edits, as a flat dict."""
    e, attributes = edits, list(oracle.attributes)
    target = attributes.index(judged_attribute(e.edit, attributes))
    others = [j for j, name in enumerate(attributes) if name not in may_change(e.edit)]
    p_src = oracle.predict_proba(e.sources).float().numpy()
    p_cf = oracle.predict_proba(e.counterfactuals).float().numpy()
    wanted = e.edit.action == "add"
    # A flip: the oracle saw the source as it was and sees the counterfactual as edited.
    flipped = ((p_src[:, target] >= 0.5) != wanted) & ((p_cf[:, target] >= 0.5) == wanted)
    sign = 1.0 if wanted else -1.0
    kept = ((p_cf[:, others] >= 0.5) == (p_src[:, others] >= 0.5)).all(axis=1)
    outside = ~dilate(e.masks, DILATION)
    cf, gt = e.counterfactuals, e.truths
    metrics = {
        "n": float(len(cf)),
        "effectiveness": float(flipped.mean()),
        "probability_shift": float((sign * (p_cf[:, target] - p_src[:, target])).mean()),
        "prediction_gain": float(np.abs(p_cf[:, target] - p_src[:, target]).mean()),
        "others_unchanged": float(kept.mean()),
        "psnr_outside": masked_psnr(cf, e.sources, outside),
        "ssim_outside": _mean(masked_ssim(cf, e.sources, outside)),
        **{f"{name}_to_truth": value for name, value in distances(cf, gt).items()},
    }
    if wanted:
        truth_area = changed_area(gt, e.sources)
        metrics["changed_area_ratio"] = _mean(
            changed_area(cf, e.sources) / np.maximum(truth_area, 1)
        )
    else:
        metrics["change_recovered"] = _mean(change_recovered(e.sources, cf, gt, e.masks))
    if real_features is not None:
        metrics["frechet"] = frechet_distance(oracle.features(cf), real_features)
    return metrics


def reference_rows(edits: EditSet) -> dict[str, EditSet]:
    """``identity`` (the source as the counterfactual), ``ground truth`` (the truth as the
    counterfactual) and the method's ground-truth mask blend, as EditSets that
    ``edit_metrics`` scores like any method."""
    blend = mask_blend(edits.sources, edits.counterfactuals, edits.masks)
    return {
        "identity": replace(edits, counterfactuals=edits.sources),
        "ground truth": replace(edits, counterfactuals=edits.truths),
        "ground-truth mask blend": replace(edits, counterfactuals=blend),
    }


def summarise(rows: Sequence[dict[str, object]]) -> str:
    """A markdown table of metric rows (each a dict; the first keys name the row)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for key in columns:
            value = row.get(key, "")
            cells.append(f"{value:.3f}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
