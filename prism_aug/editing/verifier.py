"""Choose among an edit's candidates with an attribute classifier, or reject them all.

A candidate passes when the classifier sees the edited attribute on the edit's side of the
threshold and every other attribute on the same side as in the source image. Among passing
candidates the one that changes the fewest grey levels is kept (the most minimal edit); with
none passing, the edit is rejected with a reason, never dropped.

The classifier is anything with ``attributes`` and ``predict_proba(images) -> (B, A)``: the
SynthCXR oracle, or a timm checkpoint on real data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from prism_aug.data.prompts import SUPPORT_DEVICES, EditSpec
from prism_aug.data.vocabulary import DEVICES

NO_FINDING = "No Finding"
# An edit's status: verified and kept, verified and refused, or kept without a verifier.
ACCEPTED, REJECTED, UNVERIFIED = "accepted", "rejected", "unverified"


class AttributeClassifier(Protocol):
    attributes: tuple[str, ...]

    def predict_proba(self, images: np.ndarray) -> torch.Tensor: ...


@dataclass(frozen=True)
class Verdict:
    """The verifier's decision on one edit.

    Attributes:
        chosen: index of the kept candidate, or -1 when the edit is rejected.
        passed: per candidate, whether it passed.
        reason: why the edit was rejected ("" when accepted).
        source_scores: the classifier's probabilities on the source, by attribute.
        candidate_scores: its probabilities on each candidate, by attribute.
    """

    chosen: int
    passed: tuple[bool, ...]
    reason: str
    source_scores: dict[str, float]
    candidate_scores: tuple[dict[str, float], ...]

    @property
    def accepted(self) -> bool:
        return self.chosen >= 0

    @property
    def status(self) -> str:
        return ACCEPTED if self.accepted else REJECTED

    def kept_or(self, fallback: int) -> int:
        """The chosen candidate, or ``fallback`` (the editor's) when the edit is rejected."""
        return self.chosen if self.accepted else fallback


def judged_attribute(spec: EditSpec, attributes: Sequence[str]) -> str:
    """The classifier attribute that must flip: the edited one, or Support Devices for a
    device type the classifier does not know by name."""
    if spec.attribute in attributes:
        return spec.attribute
    if spec.is_device and SUPPORT_DEVICES in attributes:
        return SUPPORT_DEVICES
    raise ValueError(f"the verifier's classifier cannot judge {spec}: it knows {list(attributes)}")


def may_change(spec: EditSpec) -> frozenset[str]:
    """Attributes an edit is allowed to change besides its own: devices move together with
    Support Devices, and No Finding with any finding; a null edit ("keep") changes nothing."""
    if spec.action == "keep":
        return frozenset()
    if spec.attribute == SUPPORT_DEVICES:
        return frozenset({SUPPORT_DEVICES, *DEVICES})
    if spec.is_device:
        return frozenset({spec.attribute, SUPPORT_DEVICES})
    return frozenset({spec.attribute, NO_FINDING})


class Verifier:
    """Judges candidates with an attribute classifier at a probability threshold."""

    def __init__(self, classifier: AttributeClassifier, threshold: float = 0.5) -> None:
        self.classifier = classifier
        self.threshold = threshold

    def judge(
        self, sources: np.ndarray, candidates: np.ndarray, edits: Sequence[EditSpec]
    ) -> list[Verdict]:
        """Verdicts for uint8 sources ``(B, H, W)`` and candidates ``(B, K, H, W)``."""
        b, k = candidates.shape[:2]
        attributes = list(self.classifier.attributes)
        images = np.concatenate([sources, candidates.reshape(b * k, *candidates.shape[2:])])
        probs = self.classifier.predict_proba(images).float().cpu().numpy()
        source_p, candidate_p = probs[:b], probs[b:].reshape(b, k, -1)
        return [
            self._verdict(sources[i], candidates[i], source_p[i], candidate_p[i], edit, attributes)
            for i, edit in enumerate(edits)
        ]

    def _verdict(
        self,
        source: np.ndarray,
        candidates: np.ndarray,
        source_p: np.ndarray,
        candidate_p: np.ndarray,
        edit: EditSpec,
        attributes: list[str],
    ) -> Verdict:
        target = attributes.index(judged_attribute(edit, attributes))
        # A null edit ("keep") must leave the attribute as the oracle sees it in the source.
        wanted = (
            bool(source_p[target] >= self.threshold)
            if edit.action == "keep"
            else (edit.action == "add")
        )
        # An edit the classifier already sees as made cannot be told from doing nothing.
        vacuous = edit.action != "keep" and bool(source_p[target] >= self.threshold) == wanted
        flipped = ((candidate_p[:, target] >= self.threshold) == wanted) & (not vacuous)  # (K,)
        others = [j for j, name in enumerate(attributes) if name not in may_change(edit)]
        kept = (candidate_p[:, others] >= self.threshold) == (source_p[others] >= self.threshold)
        passed = flipped & kept.all(axis=1)
        change = np.abs(candidates.astype(np.int16) - source.astype(np.int16)).mean(axis=(1, 2))
        chosen = int(np.where(passed, change, np.inf).argmin()) if passed.any() else -1
        reason = ""
        if vacuous:
            state = "present" if wanted else "absent"
            reason = (
                f"the classifier already sees {attributes[target]} {state} in the source "
                f"(p={source_p[target]:.2f}): the edit cannot be verified"
            )
        elif not flipped.any():
            best = candidate_p[:, target].max() if wanted else candidate_p[:, target].min()
            verb = "kept" if edit.action == "keep" else "shows" if wanted else "lost"
            reason = (
                f"no candidate {verb} {attributes[target]} "
                f"(best p={best:.2f}, threshold {self.threshold})"
            )
        elif chosen < 0:
            changed = sorted(
                {attributes[others[j]] for row in ~kept[flipped] for j in np.flatnonzero(row)}
            )
            reason = f"every candidate that flipped {attributes[target]} also changed {changed}"

        def scores(p: np.ndarray) -> dict[str, float]:
            return {name: round(float(v), 4) for name, v in zip(attributes, p, strict=True)}

        return Verdict(
            chosen,
            tuple(bool(x) for x in passed),
            reason,
            scores(source_p),
            tuple(scores(p) for p in candidate_p),
        )
