"""The oracle's data: SynthCXR renders to fit and validate, the data folder to test."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader, Dataset

from prism_aug.data.records import read_chexpert
from prism_aug.evaluation.oracle_data import (
    TRAIN_SEED_OFFSET,
    VAL_SEED_OFFSET,
    OracleRecords,
    OracleRenders,
    RenderedOnce,
)

TEST_SPLITS: tuple[str, ...] = ("train", "valid", "test")


class OracleDataModule(L.LightningDataModule):
    """Train and val: OracleRenders over disjoint patient seeds; test: a SynthCXR folder's CSV.

    Renders are made at setup by the current renderer code, held in memory for the fit and
    never read from a disk cache, so the oracle follows the renderer; each epoch goes over the
    same ``train_size`` patients. The test split is the data folder written by ``make data``.

    Args:
        data_dir: a SynthCXR folder (``prism-aug data synthcxr --out``).
        test_split: which of its CSVs the test stage reads: train, valid or test.
        size: image side in pixels.
        batch_size: images per batch.
        num_workers: DataLoader processes that render (and that read the test split).
        train_size: renders trained on, one patient each.
        val_size: renders validated on.
        p_finding: probability of each finding in a render.
        p_device: probability of each device type when a render has devices.
        p_no_device: probability of a render without any device.
        p_partial: probability that one present device is drawn only in part (training only).
    """

    def __init__(
        self,
        data_dir: Path = Path("data/synthcxr"),
        test_split: str = "test",
        size: int = 64,
        batch_size: int = 64,
        num_workers: int = 2,
        train_size: int = 200_000,
        val_size: int = 1024,
        p_finding: float = 0.4,
        p_device: float = 0.35,
        p_no_device: float = 0.3,
        p_partial: float = 0.2,
    ) -> None:
        super().__init__()
        if test_split not in TEST_SPLITS:
            raise ValueError(f"test_split {test_split!r} is invalid; choose one of {TEST_SPLITS}")
        self.save_hyperparameters()
        self.data_dir, self.test_split, self.size = Path(data_dir), test_split, int(size)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.renders = {
            "p_finding": p_finding,
            "p_device": p_device,
            "p_no_device": p_no_device,
        }
        self.train_size, self.val_size, self.p_partial = train_size, val_size, p_partial
        self.datasets: dict[str, Dataset] = {}

    def setup(self, stage: str) -> None:
        if stage == "fit":
            train = OracleRenders(
                self.train_size,
                self.size,
                TRAIN_SEED_OFFSET,
                p_partial=self.p_partial,
                **self.renders,
            )
            self.datasets["train"] = RenderedOnce(train, self.num_workers)
        if stage in ("fit", "validate"):
            val = OracleRenders(
                self.val_size, self.size, VAL_SEED_OFFSET, p_partial=0.0, **self.renders
            )
            self.datasets["val"] = RenderedOnce(val, self.num_workers)
        if stage == "test":
            csv = self.data_dir / f"{self.test_split}.csv"
            if not csv.is_file():
                raise FileNotFoundError(f"{csv} not found; write the data folder with `make data`")
            self.datasets["test"] = OracleRecords(read_chexpert(csv), self.size)

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        # Train and val are in memory: worker processes would only copy them.
        workers = self.num_workers if split == "test" else 0
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
