"""PRISM's captions and the edit specs that turn a caption into an edit's target prompt.

The diffusion model is fine-tuned on captions built from the labels, so an edit is a change
of caption: ``remove:Support Devices`` turns "Chest X-ray showing Pleural Effusion, Support
Devices" into "Chest X-ray showing Pleural Effusion". Labels may be raw CheXpert codes or
the output of ``apply_label_policy``: only 1 counts as positive, and -1 (uncertain, or
masked by the policy) makes an edit of that finding not apply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from prism_aug.data.records import device_list
from prism_aug.data.vocabulary import DEVICE_TYPES, DEVICES, FINDINGS

CAPTION_PREFIX = "Chest X-ray showing "
NORMAL_CAPTION = "Normal chest X-ray with no significant findings"
# Findings a caption can name: "No Finding" is what the normal caption says instead.
CAPTION_FINDINGS: tuple[str, ...] = tuple(f for f in FINDINGS if f != "No Finding")
SUPPORT_DEVICES = "Support Devices"
# "keep" changes nothing: the null edit, a control that passes an image through the same
# inversion and denoising with its own caption as the target.
ACTIONS: tuple[str, ...] = ("remove", "add", "keep")
ATTRIBUTES: tuple[str, ...] = (*CAPTION_FINDINGS, *DEVICES)


def _code(labels: Mapping[str, object], finding: str) -> float:
    """A finding's code as float; a missing key or blank reads as NaN (not mentioned)."""
    value = labels.get(finding)
    return math.nan if value is None or pd.isna(value) else float(value)


def caption(labels: Mapping[str, int | float]) -> str:
    """PRISM's caption: the positive findings in FINDINGS order, or the normal caption.

    Args:
        labels: finding -> code (a record row works); findings not in it are not positive.
    """
    positive = [f for f in CAPTION_FINDINGS if _code(labels, f) == 1.0]
    return CAPTION_PREFIX + ", ".join(positive) if positive else NORMAL_CAPTION


def captions(records: pd.DataFrame) -> pd.Series:
    """``caption`` of every record, vectorised: one caption per distinct positive set."""
    positive = records[list(CAPTION_FINDINGS)].to_numpy(dtype=np.float64) == 1.0  # (N, 13)
    keys = positive @ (1 << np.arange(len(CAPTION_FINDINGS), dtype=np.int64))  # (N,)
    uniques, inverse = np.unique(keys, return_inverse=True)
    texts = np.array(
        [caption({f: float(k >> i & 1) for i, f in enumerate(CAPTION_FINDINGS)}) for k in uniques],
        dtype=object,
    )
    return pd.Series(texts[inverse], index=records.index, name="caption", dtype="str")


@dataclass(frozen=True)
class EditSpec:
    """One counterfactual edit, spelled ``action:attribute`` everywhere (configs, shards).

    Args:
        action: "remove", "add" or "keep" (the null edit: same caption, same labels).
        attribute: a finding other than "No Finding", or a device type from DEVICES. A
            device edit flips "Support Devices" in the caption when it changes whether any
            device is present.
    """

    action: str
    attribute: str

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown edit action {self.action!r}; expected one of {ACTIONS}")
        if self.attribute not in ATTRIBUTES:
            raise ValueError(
                f"unknown edit attribute {self.attribute!r}; expected a finding "
                f"({', '.join(CAPTION_FINDINGS)}) or a device ({', '.join(DEVICES)})"
            )

    @classmethod
    def parse(cls, text: str) -> EditSpec:
        """Parse ``"remove:Support Devices"``; ``str(spec)`` gives the same text back."""
        action, sep, attribute = text.partition(":")
        if not sep:
            raise ValueError(
                f"edit spec {text!r} is not 'action:attribute' (e.g. 'remove:Support Devices'); "
                f"actions are {ACTIONS}"
            )
        return cls(action, attribute)

    def __str__(self) -> str:
        return f"{self.action}:{self.attribute}"

    @property
    def is_device(self) -> bool:
        return self.attribute in DEVICES

    def applies_to(self, labels: Mapping[str, object]) -> tuple[bool, str]:
        """Whether this edit can be made to a record, and why not when it cannot.

        A finding edit needs the finding present (1) to remove and absent (0 or blank) to
        add; an uncertain or masked finding (-1) is never edited. A device edit reads the
        record's "Devices" cell (SynthCXR), so records without it cannot take device edits.
        """
        if self.is_device:
            if DEVICE_TYPES not in labels:
                return False, f"record has no {DEVICE_TYPES!r} list for device edits"
            present = self.attribute in device_list(labels[DEVICE_TYPES])
        else:
            code = _code(labels, self.attribute)
            if code == -1.0:
                return False, f"{self.attribute} is uncertain or masked (-1)"
            present = code == 1.0
        if self.action == "keep":
            return True, ""
        if self.action == "remove" and not present:
            return False, f"{self.attribute} is absent, nothing to remove"
        if self.action == "add" and present:
            return False, f"{self.attribute} is already present"
        return True, ""

    def edited_labels(self, labels: Mapping[str, object]) -> dict[str, object]:
        """The record's labels after the edit (raises if the edit does not apply)."""
        ok, reason = self.applies_to(labels)
        if not ok:
            raise ValueError(f"edit {self} does not apply: {reason}")
        edited = dict(labels)
        if self.action == "keep":
            return edited
        if not self.is_device:
            edited[self.attribute] = 1.0 if self.action == "add" else 0.0
            if (
                self.attribute == SUPPORT_DEVICES
                and self.action == "remove"
                and (DEVICE_TYPES in edited)
            ):
                edited[DEVICE_TYPES] = ""  # no device is left of any type
            return edited
        devices = [d for d in device_list(labels[DEVICE_TYPES]) if d != self.attribute]
        if self.action == "add":
            devices.append(self.attribute)
        edited[DEVICE_TYPES] = ";".join(d for d in DEVICES if d in devices)
        # Support Devices means "any device": adding one sets it, removing the last clears it.
        edited[SUPPORT_DEVICES] = 1.0 if devices else 0.0
        return edited


def edit_prompts(labels: Mapping[str, object], spec: EditSpec) -> tuple[str, str]:
    """The (source, target) prompts of an edit: the record's caption and the edited one."""
    return caption(labels), caption(spec.edited_labels(labels))
