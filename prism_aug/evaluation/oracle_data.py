"""What the oracle reads: SynthCXR rendered on the fly, a records table, and its label vector.

The label vector has one entry per ORACLE_ATTRIBUTES name: the five findings SynthCXR draws,
the five device types, then "Support Devices" (any device), the mask bit order of SynthCXR.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from prism_aug.data.records import has_device, load_image
from prism_aug.data.synthcxr import MASK_ATTRIBUTES, SUPPORTED_FINDINGS, render, sample_patient
from prism_aug.data.synthcxr.render import SUPPORT_DEVICES
from prism_aug.data.vocabulary import DEVICE_TYPES, DEVICES, PATH

ORACLE_ATTRIBUTES: tuple[str, ...] = MASK_ATTRIBUTES
# Patient seeds of on-the-fly renders are offset + index. SynthCXR folders draw their patient
# seeds below 2**32 (writer.patient_seed), so these never meet a data folder's patient.
TRAIN_SEED_OFFSET = 1 << 32
VAL_SEED_OFFSET = 1 << 33
# A partly drawn device keeps at least this share of its mask, and at least MIN_PART_PIXELS.
MIN_PART_SHARE = 0.2
MIN_PART_PIXELS = 12


def label_vector(findings: tuple[str, ...], devices: tuple[str, ...]) -> np.ndarray:
    """``(11,)`` bool in ORACLE_ATTRIBUTES order; "Support Devices" is true when any device is."""
    on = {*findings, *devices, *((SUPPORT_DEVICES,) if devices else ())}
    return np.array([name in on for name in ORACLE_ATTRIBUTES])


def record_labels(records: pd.DataFrame) -> np.ndarray:
    """``(N, 11)`` bool labels of a records table (a SynthCXR CSV read by read_chexpert).

    Findings and "Support Devices" are positive where their column is 1.0; device types come
    from the ";"-joined "Devices" column.
    """
    columns = [*SUPPORTED_FINDINGS, SUPPORT_DEVICES, DEVICE_TYPES]
    missing = [c for c in columns if c not in records.columns]
    if missing:
        raise ValueError(
            f"records lack column(s) {missing}; the oracle needs {columns} (a SynthCXR CSV)"
        )
    labels = np.zeros((len(records), len(ORACLE_ATTRIBUTES)), dtype=bool)
    for j, name in enumerate(ORACLE_ATTRIBUTES):
        if name in DEVICES:
            labels[:, j] = has_device(records, name).to_numpy()
        else:
            labels[:, j] = records[name].to_numpy(dtype=np.float64) == 1.0
    return labels


def images_to_tensor(images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """Bring images to the oracle's input: ``(B, 1, size, size)`` float32 in [0, 1].

    Args:
        images: uint8 numpy ``(B, H, W)`` in [0, 255], or a float tensor ``(B, 1, H, W)`` in
            [0, 1]. Other sizes are resized (bilinear, antialiased).
        size: the oracle's image side in pixels.
    """
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(
                f"numpy images must be uint8 (B, H, W), got {images.dtype} {images.shape}; "
                "or pass a float tensor (B, 1, H, W) in [0, 1]"
            )
        x = torch.tensor(images).unsqueeze(1).float() / 255.0  # copies: inputs may be read-only
    elif isinstance(images, torch.Tensor):
        if not images.is_floating_point() or images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(
                f"tensor images must be float (B, 1, H, W) in [0, 1], got {images.dtype} "
                f"{tuple(images.shape)}; or pass uint8 numpy (B, H, W)"
            )
        x = images.float()
    else:
        raise TypeError(f"images must be a numpy array or a torch tensor, got {type(images)}")
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    return x


def device_piece(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random box-shaped piece of ``mask`` ((S, S) bool) big enough to recognise."""
    ys, xs = np.nonzero(mask)
    need = max(MIN_PART_SHARE * len(ys), MIN_PART_PIXELS)
    rows, cols = np.arange(mask.shape[0])[:, None], np.arange(mask.shape[1])[None, :]
    half = rng.uniform(0.08, 0.25) * mask.shape[0]
    k = rng.integers(len(ys))
    while True:  # grow the box around one device pixel until the piece is big enough
        box = (np.abs(rows - ys[k]) <= half) & (np.abs(cols - xs[k]) <= half)
        part = mask & box
        if part.sum() >= need:
            return part
        half *= 1.5


class OracleRenders(Dataset):
    """SynthCXR patients rendered on the fly with independently drawn findings and devices.

    Item ``i`` is patient ``seed_offset + i`` with flags drawn from its own generator, so the
    data set is deterministic per index (in any worker) and never repeats a patient. Each
    finding is present with ``p_finding``; with ``p_no_device`` the patient has no device,
    otherwise each device type is present with ``p_device``. With ``p_partial`` one present
    device is drawn only in part (a box-shaped piece of it: a left-over tube, a pacemaker
    generator without its leads), still labelled present.

    Args:
        n: number of items.
        size: image side in pixels.
        seed_offset: first patient seed (TRAIN_SEED_OFFSET, VAL_SEED_OFFSET).
        p_finding: probability of each finding.
        p_device: probability of each device type when the patient has devices.
        p_no_device: probability of a patient without any device.
        p_partial: probability that one of the present devices is drawn in part.
    """

    def __init__(
        self,
        n: int,
        size: int = 64,
        seed_offset: int = TRAIN_SEED_OFFSET,
        p_finding: float = 0.4,
        p_device: float = 0.35,
        p_no_device: float = 0.3,
        p_partial: float = 0.2,
    ) -> None:
        for name, p in (
            ("p_finding", p_finding),
            ("p_device", p_device),
            ("p_no_device", p_no_device),
            ("p_partial", p_partial),
        ):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n, self.size, self.seed_offset = int(n), int(size), int(seed_offset)
        self.p_finding, self.p_device = p_finding, p_device
        self.p_no_device, self.p_partial = p_no_device, p_partial

    def __len__(self) -> int:
        return self.n

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Item ``index`` as ``(image (S, S) uint8, labels (11,) bool)``."""
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} renders")
        rng = np.random.default_rng([self.seed_offset, index])
        patient = sample_patient(self.seed_offset + index)
        # 1. Draw the flags.
        finding_draws = rng.random(len(SUPPORTED_FINDINGS))  # (5,) in [0, 1)
        device_draws = rng.random(len(DEVICES))  # (5,)
        drawn = zip(SUPPORTED_FINDINGS, finding_draws, strict=True)
        findings = tuple(f for f, u in drawn if u < self.p_finding)
        devices: tuple[str, ...] = ()
        if rng.random() >= self.p_no_device:
            drawn = zip(DEVICES, device_draws, strict=True)
            devices = tuple(d for d, u in drawn if u < self.p_device)
        # 2. Render; a partly drawn device shows only inside a piece of its mask.
        full = render(patient, findings, devices, self.size)
        image = full.image
        if devices and rng.random() < self.p_partial:
            device = devices[rng.integers(len(devices))]
            without = render(patient, findings, [d for d in devices if d != device], self.size)
            image = np.where(device_piece(full.masks[device], rng), full.image, without.image)
        return image, label_vector(findings, devices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(image (1, S, S) float in [0, 1], labels (11,) float in {0, 1})``."""
        image, labels = self.render(index)
        return torch.from_numpy(image)[None].float() / 255.0, torch.from_numpy(labels).float()


class OracleRecords(Dataset):
    """The images and labels of a records table (a SynthCXR CSV read by read_chexpert).

    Args:
        records: with ``attrs["root"]`` (read_chexpert sets it), the finding columns and
            "Devices".
        size: image side the oracle reads; other sizes are resized.
    """

    def __init__(self, records: pd.DataFrame, size: int = 64) -> None:
        if "root" not in records.attrs:
            raise ValueError("records.attrs has no 'root'; read the CSV with read_chexpert")
        self.root, self.size = records.attrs["root"], int(size)
        self.paths = records[PATH].tolist()
        self.labels = record_labels(records)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(image (1, S, S) float in [0, 1], labels (11,) float in {0, 1})``."""
        image = load_image(self.root, self.paths[index])
        x = images_to_tensor(image[None], self.size)[0]
        return x, torch.from_numpy(self.labels[index]).float()


class RenderedOnce(Dataset):
    """Every item of an OracleRenders, rendered once into memory (uint8) and then only read.

    Rendering costs about as much CPU as a training step of a small timm model, so an oracle
    fit on fresh renders spends half its time drawing; rendered once, epochs after the first
    cost nothing but the model.

    Args:
        renders: the items to keep.
        num_workers: DataLoader processes that render them.
    """

    def __init__(self, renders: OracleRenders, num_workers: int = 0) -> None:
        images, labels = [], []
        for x, y in DataLoader(renders, batch_size=256, num_workers=num_workers):
            # Renders are uint8 / 255, so rounding back to uint8 is exact and takes a quarter
            # of the memory (200 MB for 50k renders of 64 px).
            images.append((x * 255.0).round().to(torch.uint8))
            labels.append(y)
        self.images, self.labels = torch.cat(images), torch.cat(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(image (1, S, S) float in [0, 1], labels (11,) float in {0, 1})``, as rendered."""
        return self.images[index].float() / 255.0, self.labels[index]
