"""Images of a shortcut study, with the sampler each robustness method needs.

Batches are dicts ``{"index", "image", "y", "group", "findings"}`` (BalancingGroups'
habit): ``image`` float ``(B, 1, S, S)`` normalised by our grayscale statistics (mean 0.5,
std 0.5 of [0, 1] pixels, i.e. [-1, 1]; timm's defaults are 3-channel ImageNet ones), ``y``
the target finding (0/1), ``group`` g = 2y + a, ``findings`` the 14 CheXpert findings'
codes ``(B, 14)`` (1, 0, or -1 where the label policy masked them) for the multi-label
task. Counterfactual shards (``prism-aug augment``) join the training set with their
edited labels and groups.

Samplers (``sampling``): "none" (ERM: a shuffle), "suby" / "subg" (subsample every class /
group to the smallest once), "rwy" / "rwg" (draw with replacement, weight 1 / size of the
class / group), all seeded. Every sampler draws as many samples an epoch as the real training
set holds, so that each method makes as many optimizer steps as ERM on real images alone: the
subsamples are cycled through, reshuffled on each pass, and where counterfactuals join, each
epoch is a fresh random part of the larger set. Lightning wraps any of them for DDP.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import (
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    WeightedRandomSampler,
)

from classifiers.metrics import N_GROUPS, group_index
from prism_aug.augment.reader import read_augmented
from prism_aug.augment.shards import SHARD_FOLDER, complete_shards
from prism_aug.data.labels import LabelPolicy, apply_label_policy
from prism_aug.data.records import (
    decode_grayscale,
    filter_views,
    image_path,
    load_image,
    read_chexpert,
    square_image,
)
from prism_aug.data.shortcuts import group_arrays, study_split
from prism_aug.data.synthcxr import counterfactual, record_state, sample_patient
from prism_aug.data.vocabulary import FINDINGS, SEED

SAMPLINGS: tuple[str, ...] = ("none", "suby", "subg", "rwy", "rwg")
CF_IMAGES: tuple[str, ...] = ("generated", "ground_truth")
PATIENT_SPLITS: dict[str, str] = {"train": "train", "val": "valid", "test": "test"}
# Our grayscale normalisation of [0, 1] pixels (timm's defaults are 3-channel ImageNet's).
INPUT_MEAN, INPUT_STD = 0.5, 0.5


def to_input(image: np.ndarray, size: int) -> torch.Tensor:
    """uint8 ``(H, W)`` -> float ``(1, size, size)`` in [-1, 1], centre-cropped as the
    counterfactuals are (``square_image``), so that shape cannot tell them from real images."""
    x = torch.from_numpy(square_image(image, size).astype(np.float32)).div(255.0)[None]
    return x.sub(INPUT_MEAN).div(INPUT_STD)


class PackedBytes:
    """Byte strings in one numpy buffer, indexed like a list.

    A list of bytes objects is copied into every DataLoader worker, page by page, as reading
    an item touches its reference count; one buffer stays shared copy-on-write. With tens of
    thousands of 512 px counterfactuals per DDP rank and several workers each, that is the
    difference between one copy per rank and one per worker.
    """

    def __init__(self, items: list[bytes]) -> None:
        self.offsets = np.cumsum([0, *map(len, items)], dtype=np.int64)
        self.buffer = np.frombuffer(b"".join(items), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> bytes:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index %= len(self)
        return self.buffer[self.offsets[index] : self.offsets[index + 1]].tobytes()


@functools.cache
def _kept_image(root: str, path: str, modified_ns: int) -> np.ndarray:
    """A record's decoded image, kept for the life of the process (``cache_images``): the
    fits that a comparison or a sweep runs one after another in it read each file once."""
    image = load_image(root, path)
    image.flags.writeable = False
    return image


def _true_counterfactual(
    state: tuple[int, tuple[str, ...], tuple[str, ...]], action: str, attribute: str, size: int
) -> np.ndarray:
    """The true counterfactual of a SynthCXR record's ``record_state``."""
    seed, findings, devices = state
    return counterfactual(sample_patient(seed), findings, devices, action, attribute, size)[1].image


_kept_counterfactual = functools.cache(_true_counterfactual)  # a render is a pure function


class StudyImages(Dataset):
    """Record images (read from disk per item, or once a process with ``cache``) followed by
    counterfactuals held in memory, as PNG bytes in one buffer (decoded per item, the form
    they have in the shards) or as one array ``(N, H, W)``.

    ``labels`` is ``(N, 2 + 14)``: y, a, then the 14 findings' codes (1, 0, or -1 where the
    label policy masked them), which items carry as ``findings`` for the multi-label task.
    With ``pairs`` (SynthCXR records and the study's attribute), each record's item also
    holds ``image_cf``: its true counterfactual with the attribute flipped, for measuring
    how much a prediction moves with the spurious attribute alone.
    """

    def __init__(
        self,
        root: str,
        paths: list[str],
        labels: np.ndarray,
        size: int,
        extra_images: PackedBytes | np.ndarray | None = None,
        extra_labels: np.ndarray | None = None,
        pairs: tuple[list[dict[str, Any]], str] | None = None,
        cache: bool = False,
    ) -> None:
        self.root, self.paths, self.size, self.pairs = root, paths, size, pairs
        self.cache = cache
        self.extra = PackedBytes([]) if extra_images is None else extra_images
        extras = np.zeros((0, labels.shape[1]), np.int64) if extra_labels is None else extra_labels
        self.labels = np.concatenate([labels, extras]).astype(np.int64)
        self.groups = group_index(self.labels[:, 0], self.labels[:, 1])

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def y(self) -> np.ndarray:
        return self.labels[:, 0]

    def _record(self, index: int) -> np.ndarray:
        root, path = str(self.root), str(self.paths[index])
        if not self.cache:
            return load_image(root, path)
        modified = image_path(root, path).stat().st_mtime_ns  # a rewritten file is read again
        return _kept_image(root, path, modified)

    def _flipped(self, index: int, size: int) -> np.ndarray:
        """The record's true counterfactual with the study's attribute flipped."""
        rows, attribute = self.pairs
        action = "remove" if self.labels[index, 1] else "add"
        render = _kept_counterfactual if self.cache else _true_counterfactual
        return render(record_state(rows[index]), action, attribute, size)

    def _extra(self, index: int) -> np.ndarray:
        if isinstance(self.extra, np.ndarray):
            return self.extra[index]
        return decode_grayscale(io.BytesIO(self.extra[index]))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        n = len(self.paths)
        image = self._record(index) if index < n else self._extra(index - n)
        y = self.labels[index, 0]
        item = {
            "index": index,
            "image": to_input(image, self.size),
            "y": int(y),
            "group": int(self.groups[index]),
            "findings": torch.from_numpy(self.labels[index, 2:]),
        }
        if self.pairs is not None:
            item["image_cf"] = to_input(self._flipped(index, image.shape[0]), self.size)
        return item


def balancing_sampler(
    labels: np.ndarray, how: str, seed: int, length: int | None = None
) -> Sampler[int]:
    """The sampler of ``how`` over per-sample class or group ids ``labels`` (see module),
    drawing ``length`` samples an epoch (default: one per sample)."""
    length = len(labels) if length is None else length
    if how == "none":
        # A fresh permutation an epoch, cut to length. Not a RandomSampler: under DDP,
        # Lightning swaps that for a DistributedSampler over the whole set, uncut.
        return CycledSubset(np.arange(len(labels)), length, seed)
    counts = np.bincount(labels, minlength=labels.max() + 1)
    if how.startswith("rw"):
        weights = 1.0 / counts[labels]
        generator = torch.Generator().manual_seed(seed)
        return WeightedRandomSampler(
            torch.from_numpy(weights), length, replacement=True, generator=generator
        )
    rng = np.random.default_rng(seed)
    smallest = counts[counts > 0].min()
    kept = np.concatenate(
        [
            rng.choice(np.flatnonzero(labels == c), smallest, replace=False)
            for c in np.flatnonzero(counts)
        ]
    )
    return CycledSubset(np.sort(kept), length, seed)


class CycledSubset(Sampler[int]):
    """``length`` indices an epoch from the fixed subset ``kept``: shuffled passes over it,
    one after another, the last one cut short.

    One pass an epoch over a subsample a fifth of the training set would give SUBG a fifth
    of ERM's optimizer steps in the same epochs: it underfits, and the comparison then
    measures the budget, not the balancing. (BalancingGroups keeps one pass an epoch and
    tunes each method's batch size instead.)
    """

    def __init__(self, kept: np.ndarray, length: int, seed: int) -> None:
        if len(kept) == 0:
            raise ValueError("CycledSubset needs at least one kept index")
        self.kept = np.asarray(kept, dtype=np.int64)
        # Without replacement and longer than its source, RandomSampler makes exactly these
        # passes: positions into ``kept``, each pass a fresh permutation.
        self.positions = RandomSampler(
            range(len(kept)), num_samples=length, generator=torch.Generator().manual_seed(seed)
        )

    def __len__(self) -> int:
        return len(self.positions)

    def __iter__(self) -> Iterator[int]:
        return iter(self.kept[list(self.positions)].tolist())


class ClassifierDataModule(L.LightningDataModule):
    """Train, validation and test images of one shortcut study.

    Args:
        train_csv, val_csv, test_csv: CheXpert-shaped CSVs (SynthCXR's splits).
        target: the finding y the classifier predicts.
        attribute: the spurious attribute a defining the groups.
        counterfactuals: run folders of ``prism-aug augment`` whose accepted samples join
            the training set.
        sampling: "none", "suby", "subg", "rwy" or "rwg".
        image_size: side the images are resized to.
        batch_size, num_workers: the loaders'.
        cache_images: keep each decoded record image (and each test pair's true
            counterfactual) in memory after its first read, for the life of the process (in
            each loader worker): a few MB for SynthCXR at 64 px, tens of GB for CheXpert.
        seed: the samplers' draws (shuffles, subsamples, reweighted draws).
        study_seed: the draw of the study's subset (``correlation``), fixed across the
            seeds a comparison trains with; an augment run that plans on this study's
            training records uses the same one.
        counterfactual_images: "generated" (the shards' images) or "ground_truth" (SynthCXR's
            true counterfactuals of the same accepted jobs: the oracle-CF upper bound).
        test_pairs: test items carry their true counterfactual (SynthCXR only), and the
            test metrics add the shortcut reliance mean |p(x) - p(x_cf)|.
        held_out_training: train on every other record of the validation split and
            validate on the rest (DFR's last-layer retraining on held-out data).
        split_by_patient: read only ``train_csv`` and split it 70/15/15 by patient
            (CheXpert's train.csv); otherwise each split has its CSV (SynthCXR's folders).
        correlation: (P(a=1 | y=1), P(a=1 | y=0)) set exactly in train and validation
            (``shortcut_subset``, e.g. DeCoDEx's [0.9, 0.1]), with a group-balanced test;
            None keeps the records as they are.
    """

    def __init__(
        self,
        train_csv: Path = Path("data/synthcxr/train.csv"),
        val_csv: Path = Path("data/synthcxr/valid.csv"),
        test_csv: Path = Path("data/synthcxr/test.csv"),
        target: str = "Pleural Effusion",
        attribute: str = "Support Devices",
        counterfactuals: list[str] | None = None,
        sampling: str = "none",
        image_size: int = 64,
        batch_size: int = 64,
        num_workers: int = 0,
        cache_images: bool = False,
        seed: int = 0,
        study_seed: int = 0,
        counterfactual_images: str = "generated",
        test_pairs: bool = False,
        held_out_training: bool = False,
        split_by_patient: bool = False,
        correlation: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        if sampling not in SAMPLINGS:
            raise ValueError(f"unknown sampling {sampling!r}; expected one of {SAMPLINGS}")
        if counterfactual_images not in CF_IMAGES:
            raise ValueError(
                f"unknown counterfactual_images {counterfactual_images!r}; expected {CF_IMAGES}"
            )
        self.csvs = {"train": Path(train_csv), "val": Path(val_csv), "test": Path(test_csv)}
        self.target, self.attribute = target, attribute
        self.counterfactuals = list(counterfactuals or [])
        self.sampling, self.image_size = sampling, image_size
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.cache_images = cache_images
        self.held_out_training = held_out_training
        self.counterfactual_images, self.test_pairs = counterfactual_images, test_pairs
        self.split_by_patient, self.correlation = split_by_patient, correlation
        self.study_seed = study_seed
        self.datasets: dict[str, StudyImages] = {}

    def _split(self, split: str) -> StudyImages:
        if self.held_out_training and split in ("train", "val"):
            records = self._records("val")
            records = records.iloc[0 if split == "train" else 1 :: 2]
        else:
            records = self._records(split)
        csv = records.attrs["source"]
        y, a = group_arrays(records, self.target, self.attribute)
        eligible = y >= 0
        if not eligible.any():
            raise ValueError(f"{csv}: no record has both {self.target!r} and {self.attribute!r}")
        codes = records[list(FINDINGS)].to_numpy(dtype=np.int64)[eligible]
        labels = np.concatenate([np.stack([y[eligible], a[eligible]], axis=1), codes], axis=1)
        paths = records["path"].to_numpy()[eligible].tolist()
        root = records.attrs["root"]
        images = partial(StudyImages, root, paths, labels, self.image_size, cache=self.cache_images)
        if split == "test" and self.test_pairs:
            return images(pairs=(records[eligible].to_dict("records"), self.attribute))
        if split != "train" or not self.counterfactuals:
            return images()
        return images(*self._counterfactuals(records[eligible]))

    def _records(self, split: str) -> pd.DataFrame:
        """A split's frontal records after the label policy, made into the study's subset."""
        csv = self.csvs["train" if self.split_by_patient else split]
        records = apply_label_policy(filter_views(read_chexpert(csv)), LabelPolicy())
        return study_split(
            records,
            PATIENT_SPLITS[split],
            self.target,
            self.attribute,
            self.correlation,
            self.split_by_patient,
            self.study_seed,
        )

    def _counterfactuals(
        self, records: pd.DataFrame
    ) -> tuple[PackedBytes | np.ndarray, np.ndarray]:
        """The usable counterfactuals of the run folders whose source is one of the training
        ``records`` (PNG bytes), or their ground truth (one array), and labels (y, a, the 14
        findings' codes after the edit). Every DDP rank reads every shard: the distributed
        sampler divides the whole training set.

        A counterfactual of any other image is left out, with a warning: it would put a
        validation or test patient's anatomy into training (an augment run not given this
        study's ``split_by_patient`` and ``correlation`` plans on all of train.csv), or add
        an image the study left out of its subset, which no baseline trains on.
        """
        shards = [
            shard
            for folder in self.counterfactuals
            for shard in complete_shards(f"{folder}/{SHARD_FOLDER}")
        ]
        if not shards:
            raise FileNotFoundError(f"no complete shards in {self.counterfactuals}")
        rows = {row["path"]: row for row in records.to_dict("records")}
        images, labels, outside = [], [], 0
        for item in read_augmented(shards, originals=False, every_rank=True, decode=False):
            row = rows.get(item["source_path"])
            if row is None:
                outside += 1
                continue
            image = item["image"]
            if self.counterfactual_images == "ground_truth":
                action, attribute = item["edit"].split(":", 1)
                size = decode_grayscale(io.BytesIO(image)).shape[0]
                image = _true_counterfactual(record_state(row), action, attribute, size)
            images.append(image)
            y_a = [int(part.split("=")[1]) for part in item["group"].split(",")]
            after = item["labels"]
            codes = [-1 if after.get(f) is None else int(after[f]) for f in FINDINGS]
            labels.append(y_a + codes)
        if outside:
            where = f"{self.counterfactuals}: {outside} of {outside + len(images)}"
            if not images:
                raise ValueError(
                    f"{where} counterfactuals have their source outside the training records "
                    f"of {records.attrs['source']}; none is left to train on"
                )
            rank_zero_warn(
                f"{where} counterfactuals have their source outside the training records "
                "(another split, or left out of the study's subset): left out"
            )
        labels = np.asarray(labels, dtype=np.int64).reshape(-1, 2 + len(FINDINGS))
        arrays = self.counterfactual_images == "ground_truth" and images
        return (np.stack(images) if arrays else PackedBytes(images)), labels

    def setup(self, stage: str) -> None:
        if self.test_pairs:  # checked before a fit, not after it
            csv = self.csvs["train" if self.split_by_patient else "test"]
            if SEED not in pd.read_csv(csv, nrows=0).columns:
                raise ValueError(
                    f"data.test_pairs needs SynthCXR records (a {SEED!r} column to render "
                    f"each test image's true counterfactual); {csv} has none: set it false"
                )
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}[stage]
        for split in splits:
            if split not in self.datasets:
                self.datasets[split] = self._split(split)

    def train_dataloader(self) -> DataLoader:
        train = self.datasets["train"]
        ids = train.y if self.sampling.endswith("y") else train.groups
        sampler = balancing_sampler(ids, self.sampling, self.seed, length=len(train.paths))
        return DataLoader(
            train,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            drop_last=False,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.datasets["val"], self.batch_size, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.datasets["test"], self.batch_size, num_workers=self.num_workers)

    def group_sizes(self) -> torch.Tensor:
        """Training samples per group ``(4,)`` (GroupDRO's adjustment divides by them)."""
        return torch.from_numpy(np.bincount(self.datasets["train"].groups, minlength=N_GROUPS))
