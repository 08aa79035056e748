"""Fits side by side: ``prism-classify`` runs in worker processes, each with its own slot.

On a GPU machine a slot is a GPU (``--trainer.devices=[slot]``), so eight seeds of a
one-device config run at once on eight GPUs. On a CPU a slot is an equal share of the cores
(``torch.set_num_threads``): a small network's step does not use two cores twice as well
as one, so two one-thread fits make more steps a second than one fit on both (resnet18 at
64 px on 2 cores: 1.15x the images/s in all, ``make bench-classifier``). A fit's numbers
depend on its thread count (the order of its sums), so Table 2's runner counts the threads
among a row's inputs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
from collections.abc import Hashable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

import torch

from classifiers.cli import main as classify
from classifiers.report import test_metrics


def job_count(text: str) -> int:
    """The runners' ``--jobs``: a whole number of at least 1 (argparse names the flag)."""
    jobs = int(text)
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {jobs}")
    return jobs


def cpu_share(workers: int) -> int:
    """Threads for each of ``workers`` fits at once: the cores this process may use, split."""
    return max(1, len(os.sched_getaffinity(0)) // workers)


def run_fits(fits: Sequence[Sequence[str]], threads: int | None) -> dict[str, float]:
    """Run ``prism-classify`` on each argument list in turn (a job of two stages, as JTT's);
    returns the last one's test metrics without the prefix."""
    if threads is not None:
        torch.set_num_threads(threads)
    metrics: dict[str, float] = {}
    for arguments in fits:
        metrics = test_metrics(classify(list(arguments)).trainer.callback_metrics)
    return metrics


class FitPool:
    """Up to ``workers`` jobs at once, each a list of ``prism-classify`` argument lists.

    Args:
        workers: jobs at once; each runs in a spawned process (forking after torch has
            started its thread pools can hang).
        gpus: give each job its own GPU (the config's accelerator is a GPU) rather than a
            share of the CPU threads.
    """

    def __init__(self, workers: int, gpus: bool = False) -> None:
        if workers < 1:
            raise ValueError(f"FitPool: workers must be at least 1, got {workers}")
        self.gpus = gpus
        self.threads = None if gpus else cpu_share(workers)
        self.slots = list(range(workers))
        self.running: dict[Future, tuple[Hashable, int]] = {}
        self.executor = ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"))

    def __enter__(self) -> FitPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.executor.shutdown(cancel_futures=True)

    def submit(self, key: Hashable, fits: Sequence[Sequence[str]]) -> None:
        """Start job ``key`` in the first free slot (``free_slots`` must be above 0)."""
        slot = self.slots.pop(0)
        job = self.executor.submit(run_fits, self.placed(fits, slot), self.threads)
        self.running[job] = (key, slot)

    def placed(self, fits: Sequence[Sequence[str]], slot: int) -> list[list[str]]:
        """The argument lists of a job in ``slot``: on GPUs, that slot's device."""
        device = [f"--trainer.devices=[{slot}]"] if self.gpus else []
        return [[*arguments, *device] for arguments in fits]

    @property
    def free_slots(self) -> int:
        return len(self.slots)

    @property
    def running_keys(self) -> set[Hashable]:
        """The keys of the jobs submitted and not yet returned by ``next_finished``."""
        return {key for key, _ in self.running.values()}

    def next_finished(self) -> tuple[Hashable, dict[str, float]]:
        """Wait for a running job; returns its key and test metrics (its error, raised)."""
        if not self.running:
            raise RuntimeError("FitPool.next_finished: no job is running")
        done, _ = wait(self.running, return_when=FIRST_COMPLETED)
        future = done.pop()
        key, slot = self.running.pop(future)
        self.slots = sorted([*self.slots, slot])
        return key, future.result()
