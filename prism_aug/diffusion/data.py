"""Captioned chest X-rays for fine-tuning: records in, (image or cached latents, caption) out.

``CXRDataModule`` reads a CheXpert-shaped CSV (CheXpert, MIMIC in CheXpert form, SynthCXR),
applies the label policy and the view filter, splits by patient (the CSV's own files or
``add_splits``), and serves images resized to the model's resolution with PRISM's captions.
With a latent cache (``latent_cache.py``) the train and val sets serve the VAE posterior
instead of pixels; the fine-tuning module asks for it in ``on_fit_start``, when its VAE is
on the training device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from prism_aug.data.labels import LabelPolicy, apply_label_policy
from prism_aug.data.prompts import captions
from prism_aug.data.records import filter_views, load_image, read_chexpert, square_image
from prism_aug.data.splits import DEFAULT_FRACTIONS, add_splits
from prism_aug.diffusion.latent_cache import LatentCache, build_latent_cache

STAGES: tuple[str, ...] = ("train", "valid", "test")


def to_model_pixels(image: np.ndarray, size: int) -> torch.Tensor:
    """A uint8 radiograph ``(H, W)`` as the VAE's input ``(1, size, size)`` in [-1, 1]."""
    pixels = torch.from_numpy(square_image(image, size).astype(np.float32))
    return (pixels / 127.5 - 1.0).unsqueeze(0)


class CaptionedImages(Dataset):
    """Records as ``{"index", "pixel_values" (1, S, S) in [-1, 1], "caption"}`` items."""

    def __init__(self, records: pd.DataFrame, root: str | Path, image_size: int) -> None:
        self.paths = records["path"].tolist()
        self.captions = captions(records).tolist()
        self.root = Path(root)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, object]:
        image = load_image(self.root, self.paths[index])
        pixels = to_model_pixels(image, self.image_size)
        return {"index": index, "pixel_values": pixels, "caption": self.captions[index]}


class CachedLatents(Dataset):
    """The same records as ``{"index", "latent_mean", "latent_std" (4, h, w), "caption"}``."""

    def __init__(self, cache: LatentCache, captions: Sequence[str]) -> None:
        if len(cache) != len(captions):
            raise ValueError(
                f"latent cache {cache.folder} holds {len(cache)} images, "
                f"the records {len(captions)}"
            )
        self.cache = cache
        self.captions = list(captions)

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> dict[str, object]:
        mean, std = self.cache[index]
        return {
            "index": index,
            "latent_mean": mean,
            "latent_std": std,
            "caption": self.captions[index],
        }


class CXRDataModule(L.LightningDataModule):
    """Captioned radiographs from a CheXpert-shaped CSV, split by patient.

    Args:
        train_csv: CSV of the training records (CheXpert's train.csv, SynthCXR's train.csv).
        val_csv: CSV of the validation records; None splits ``train_csv`` by patient with
            ``split_fractions`` instead (PRISM's 70/15/15 of CheXpert's train.csv).
        test_csv: CSV of the test records (the VAE stage reports PSNR on it); None takes the
            test part of the split when ``val_csv`` is None, and no test set otherwise.
        root: folder the CSV's paths are relative to (see ``read_chexpert``'s default).
        split_fractions: train/valid/test patient fractions when ``val_csv`` is None.
        views: views kept ("Frontal", "Lateral").
        uncertain: label policy for uncertain codes: "zeros", "ones" or "ignore".
        blank: label policy for blank codes: "zeros" or "ignore".
        image_size: side in px the images are resized to: the model's resolution (64 for
            ``tiny``, 512 for SD v1.5).
        batch_size: images per batch and device.
        num_workers: DataLoader worker processes.
        latent_cache: folder under which VAE latents are cached (one sub-folder per model,
            resolution and records); None encodes every image at every step.
    """

    def __init__(
        self,
        train_csv: str,
        val_csv: str | None = None,
        test_csv: str | None = None,
        root: str | None = None,
        split_fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
        views: list[str] | None = None,
        uncertain: str = "ignore",
        blank: str = "zeros",
        image_size: int = 64,
        batch_size: int = 64,
        num_workers: int = 0,
        latent_cache: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.policy = LabelPolicy(uncertain=uncertain, blank=blank)
        self.views = tuple(views or ["Frontal"])
        self.datasets: dict[str, Dataset] = {}

    def _read(self, csv: str) -> pd.DataFrame:
        records = filter_views(read_chexpert(csv, self.hparams.root), self.views)
        if records.empty:
            raise ValueError(f"{csv}: no records left after keeping views {list(self.views)}")
        return apply_label_policy(records, self.policy)

    def records(self) -> dict[str, pd.DataFrame]:
        """The records of each stage ("train", "valid", "test"), the stages it has only."""
        hp = self.hparams
        if hp.val_csv is None:
            records = add_splits(self._read(hp.train_csv), hp.split_fractions)
            parts = {stage: records[records["split"] == stage] for stage in STAGES}
            if hp.test_csv is not None:
                parts["test"] = self._read(hp.test_csv)
            return {stage: part for stage, part in parts.items() if len(part)}
        csvs = {"train": hp.train_csv, "valid": hp.val_csv, "test": hp.test_csv}
        return {stage: self._read(csv) for stage, csv in csvs.items() if csv is not None}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        for name, records in self.records().items():
            self.datasets[name] = CaptionedImages(
                records, records.attrs["root"], self.hparams.image_size
            )

    def attach_latent_cache(
        self,
        encode: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        vae_fingerprint: str,
        trainer: L.Trainer,
    ) -> None:
        """Serve the train and valid sets from cached latents, encoding what is not cached.

        Each rank encodes its share of the images, then all read the complete cache (see
        ``build_latent_cache``), in batches of ``batch_size`` read by ``num_workers``: the
        training batch fits on the device beside the UNet, so the encoder's does (SD's VAE at
        512 px needs an estimated 26-30 GB for 64 images, which a fixed batch of 64 asked
        for). Does nothing when ``latent_cache`` is None.

        Args:
            encode: pixels ``(B, C, S, S)`` in [-1, 1] -> posterior mean and std
                ``(B, 4, S/f, S/f)``, unscaled (the VAE's own latent space).
            vae_fingerprint: changes whenever the VAE's config or weights do.
            trainer: the running trainer (rank, world size, barrier).
        """
        if self.hparams.latent_cache is None:
            return
        self.setup()
        for name in ("train", "valid"):
            dataset = self.datasets.get(name)
            if not isinstance(dataset, CaptionedImages):
                continue  # absent, or already cached
            cache = build_latent_cache(
                Path(self.hparams.latent_cache),
                dataset,
                encode,
                vae_fingerprint,
                rank=trainer.global_rank,
                world_size=trainer.world_size,
                barrier=trainer.strategy.barrier,
                batch_size=self.hparams.batch_size,
                num_workers=self.hparams.num_workers,
            )
            self.datasets[name] = CachedLatents(cache, dataset.captions)

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        if name not in self.datasets:
            raise ValueError(
                f"no {name} records: give data.val_csv/test_csv, or leave val_csv empty to "
                f"split data.train_csv by patient with data.split_fractions"
            )
        return DataLoader(
            self.datasets[name],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
            drop_last=shuffle,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
