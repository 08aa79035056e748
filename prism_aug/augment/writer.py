"""Streams ``predict_step``'s samples into webdataset shards as each batch finishes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter

from prism_aug.augment.shards import SHARD_FOLDER, ShardSink, next_attempt


class ShardPredictionWriter(BasePredictionWriter):
    """Each rank writes its samples into its own series of shards (see ``shards``).

    Args:
        out: the run folder; shards go to ``{out}/shards``.
        samples_per_shard: samples per shard (the unit a killed run loses at most; a run
            stopped by an exception completes its open shard, which holds whole samples).
    """

    def __init__(self, out: str, samples_per_shard: int = 1000) -> None:
        super().__init__(write_interval="batch")
        self.out, self.samples_per_shard = str(out).rstrip("/"), samples_per_shard
        self.sink: ShardSink | None = None
        self._writing = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Every rank reads the attempt before any writes: Lightning holds a barrier after
        # setup, and shards only appear during the predict loop.
        url = f"{self.out}/{SHARD_FOLDER}"
        self.sink = ShardSink(url, next_attempt(url), trainer.global_rank, self.samples_per_shard)

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: list[dict[str, Any]],
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._writing = True
        for sample in prediction:
            self.sink.write(sample)
        self._writing = False

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.sink.close()
        trainer.strategy.barrier("shards-complete")  # rank 0 then reads every rank's shards

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        """Keep what the run finished: complete the open shard, unless the exception came
        while a sample was being written (then the shard stays partial, and is redone)."""
        if self.sink is not None and not self._writing:
            self.sink.close()
