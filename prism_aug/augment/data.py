"""The predict data of an augmentation run: the plan, cut into fixed chunks, minus what is done.

The plan is cut into chunks of ``batch_size`` jobs in plan order; a chunk is one predict
batch and always holds the same jobs, whichever ranks run it and whatever was done before.
That is what makes a resumed run write the same bytes as an uninterrupted one: batched CPU
arithmetic depends on which images share a batch, so a chunk with some jobs already in
complete shards is edited whole again and only its missing jobs are written.

Chunks are dataset items (a DataLoader of batch size 1 hands one chunk to ``predict_step``),
so Lightning's predict sampler deals whole chunks to the ranks without padding: rank r of R
takes chunks r, r + R, ... When fewer chunks are left than ranks, empty chunks fill in
(every rank must run a batch); they hold no job, so nothing is written twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
from torch.utils.data import DataLoader, Dataset

from prism_aug.augment.plan import PlanSettings, make_plan
from prism_aug.augment.shards import (
    SHARD_FOLDER,
    discard_partial_shards,
    filesystem,
    read_shards,
)
from prism_aug.data.labels import LabelPolicy, apply_label_policy
from prism_aug.data.prompts import EditSpec
from prism_aug.data.records import filter_views, load_image, read_chexpert
from prism_aug.data.shortcuts import group_counts, study_split
from prism_aug.data.vocabulary import DEVICE_TYPES, FINDINGS, PATH

PLAN_NAME = "plan.csv"


@dataclass
class Job:
    """One planned edit with what ``predict_step`` needs: labels, pixels or why not."""

    key: str
    source_key: str
    path: str
    edit: str
    group_before: str
    group_after: str
    labels: dict[str, Any]
    image: np.ndarray | None = None
    error: str = ""
    done: bool = False


@dataclass
class Chunk:
    """A fixed run of consecutive plan jobs: one predict batch."""

    index: int
    jobs: list[Job] = field(default_factory=list)


def done_keys(out: str) -> set[str]:
    """Keys already in complete shards of the run folder ``out``."""
    return {meta["key"] for _, metas, _ in read_shards(f"{out}/{SHARD_FOLDER}") for meta in metas}


def record_labels(row: dict[str, Any]) -> dict[str, Any]:
    """A record's findings (and SynthCXR device list) as JSON-friendly values."""
    labels = {f: None if pd.isna(row[f]) else float(row[f]) for f in FINDINGS}
    if DEVICE_TYPES in row:
        labels[DEVICE_TYPES] = row[DEVICE_TYPES] if isinstance(row[DEVICE_TYPES], str) else ""
    return labels


class ChunkDataset(Dataset):
    """Chunks of jobs; reading a chunk loads its images (in DataLoader workers)."""

    def __init__(self, chunks: list[list[dict[str, Any]]], indices: list[int], root: str) -> None:
        self.chunks, self.indices, self.root = chunks, indices, root

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> Chunk:
        return Chunk(self.indices[i], [self._job(spec) for spec in self.chunks[i]])

    def _job(self, spec: dict[str, Any]) -> Job:
        job = Job(**spec)
        ok, reason = EditSpec.parse(job.edit).applies_to(job.labels)
        if not ok:
            job.error = f"edit does not apply: {reason}"
            return job
        try:
            job.image = load_image(self.root, job.path)
        except (OSError, ValueError) as err:
            job.error = str(err)
        return job


def _unwrap(items: list[Chunk]) -> Chunk:
    return items[0]


class AugmentDataModule(L.LightningDataModule):
    """Plans the run, writes the plan beside the output, and serves the jobs still to do.

    Args:
        records: a CheXpert-shaped CSV (CheXpert, MIMIC in CheXpert form, SynthCXR).
        out: the run folder (local path or fsspec URL): plan.csv, run.json, shards/,
            manifest.json.
        plan: what to generate.
        root: the folder the CSV's paths start from (default: as ``read_chexpert``).
        views: views kept (frontal only, as the diffusion model was trained).
        label_policy: how uncertain and blank labels are read before planning.
        split_by_patient, correlation, study_seed: plan on the training records of this
            shortcut study (``study_split``), as the classifiers' data of the same settings
            trains on: CheXpert's train.csv split 70/15/15 by patient, then cut to 90/10.
            By default every record of ``records`` is planned on.
        batch_size: jobs per chunk, i.e. images edited together.
        num_workers: DataLoader processes loading images.
    """

    def __init__(
        self,
        records: Path,
        out: str,
        plan: PlanSettings | None = None,
        root: Path | None = None,
        views: tuple[str, ...] = ("Frontal",),
        label_policy: LabelPolicy | None = None,
        split_by_patient: bool = False,
        correlation: tuple[float, float] | None = None,
        study_seed: int = 0,
        batch_size: int = 8,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.prepare_data_per_node = False  # one rank plans and cleans the shared folder
        self.records_csv, self.out = Path(records), str(out).rstrip("/")
        self.plan_settings = plan or PlanSettings()
        self.root, self.views = root, tuple(views)
        self.label_policy = label_policy or LabelPolicy()
        self.split_by_patient, self.correlation = split_by_patient, correlation
        self.study_seed = study_seed
        self.batch_size, self.num_workers = batch_size, num_workers
        self.plan: pd.DataFrame | None = None
        self.records: pd.DataFrame | None = None
        self.dataset: ChunkDataset | None = None

    @property
    def shard_url(self) -> str:
        return f"{self.out}/{SHARD_FOLDER}"

    def load_records(self) -> pd.DataFrame:
        """The records planned on: the study's training records (all, by default)."""
        records = read_chexpert(self.records_csv, root=self.root)
        kept = apply_label_policy(filter_views(records, self.views), self.label_policy)
        p = self.plan_settings
        return study_split(
            kept,
            "train",
            p.target,
            p.attribute,
            self.correlation,
            self.split_by_patient,
            self.study_seed,
        ).reset_index(drop=True)

    def make_plan(self) -> pd.DataFrame:
        return make_plan(self.load_records(), self.plan_settings)

    def prepare_data(self) -> None:
        """Write the plan (or check it against the one already there) and drop partials."""
        plan = self.make_plan()
        fs, folder = filesystem(self.out)
        if fs.exists(f"{folder}/{PLAN_NAME}"):
            self._check_plan(plan)
        else:
            fs.makedirs(folder, exist_ok=True)
            with fs.open(f"{folder}/{PLAN_NAME}", "w") as f:
                plan.to_csv(f, index=False)
        for partial in discard_partial_shards(self.shard_url):
            print(f"discarded the partial shard {partial}")

    def _check_plan(self, plan: pd.DataFrame) -> None:
        """Raise unless ``plan`` is the one written in the run folder."""
        fs, folder = filesystem(self.out)
        with fs.open(f"{folder}/{PLAN_NAME}", "r") as f:
            written = pd.read_csv(f, dtype="str", keep_default_na=False)
        if not written.equals(plan.astype("str")):
            raise ValueError(
                f"{self.out}/{PLAN_NAME} holds another plan than this configuration makes "
                f"({len(written)} jobs there, {len(plan)} now): give a new out folder, or "
                "delete the old run to start over"
            )

    def setup(self, stage: str) -> None:
        records = self.load_records()
        self.records = records
        self.plan = make_plan(records, self.plan_settings)
        # Every rank deals chunks from its own plan: all must hold the one rank 0 wrote
        # (another copy of the CSV on another node would deal other jobs).
        self._check_plan(self.plan)
        labels = {
            row[PATH]: record_labels(row)
            for row in records.loc[records[PATH].isin(self.plan["path"])].to_dict("records")
        }
        done = self._done_keys()
        chunks, indices = [], []
        jobs = self.plan.to_dict("records")
        for index, start in enumerate(range(0, len(jobs), self.batch_size)):
            part = jobs[start : start + self.batch_size]
            if all(job["key"] in done for job in part):
                continue
            chunks.append(
                [{**j, "labels": labels[j["path"]], "done": j["key"] in done} for j in part]
            )
            indices.append(index)
        self.dataset = ChunkDataset(chunks, indices, records.attrs["root"])
        self.pad_for_ranks(self.trainer.world_size if self.trainer is not None else 1)

    def _done_keys(self) -> set[str]:
        """What complete shards hold, read once by rank 0 and sent to the others: reading
        every shard streams all of its images (tens of GB of shards on CheXpert)."""
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            return done_keys(self.out)
        done = done_keys(self.out) if trainer.is_global_zero else None
        return trainer.strategy.broadcast(done, src=0)

    def pad_for_ranks(self, world: int) -> None:
        """With fewer chunks left than ranks, add empty ones: every rank must run a batch."""
        while 0 < len(self.dataset) < world:
            self.dataset.chunks.append([])
            self.dataset.indices.append(-1)

    @property
    def pending_jobs(self) -> int:
        """Jobs this run will write."""
        return sum(not job["done"] for chunk in self.dataset.chunks for job in chunk)

    def groups_before(self) -> dict[str, int]:
        """The study's group counts over the records, before any counterfactual."""
        p = self.plan_settings
        return group_counts(self.records, p.target, p.attribute)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(
            self.dataset,
            batch_size=1,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=_unwrap,
        )
