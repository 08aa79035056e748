"""Exactly once across processes: two DDP ranks (gloo), and a run killed with SIGKILL.

Both run ``python -m prism_aug.cli augment`` in fresh processes, as a user would; the
outputs are compared with an uninterrupted single-process run of the same plan.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from test_augment_run import shard_members
from torch.utils.data.distributed import DistributedSampler

from prism_aug.augment.data import AugmentDataModule, ChunkDataset

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _augment(config: Path, *extra: str) -> subprocess.Popen:
    """``prism-aug augment`` in a fresh process. One thread each, as Lightning gives DDP
    ranks here: CPU results are bitwise reproducible at a fixed thread count."""
    command = [sys.executable, "-m", "prism_aug.cli", "augment", "--config", str(config), *extra]
    return subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(run: subprocess.Popen) -> None:
    _, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr.decode()[-3000:]


@pytest.mark.parametrize("chunks", [1, 2, 5, 7])
@pytest.mark.parametrize("world", [2, 3])
def test_lightning_predict_sampler_deals_each_chunk_once(chunks, world):
    """The sampler Lightning puts under predict loaders neither pads nor drops."""
    data = AugmentDataModule(records=Path("unused.csv"), out="unused")
    data.dataset = ChunkDataset([[{}]] * chunks, list(range(chunks)), root=".")
    data.pad_for_ranks(world)
    dealt = [
        i
        for rank in range(world)
        for i in UnrepeatedDistributedSampler(data.dataset, world, rank, shuffle=False)
    ]
    assert sorted(dealt) == list(range(max(chunks, world)))  # each chunk once, pads empty
    assert all(not data.dataset.chunks[i] for i in range(chunks, max(chunks, world)))
    padded = [i for r in range(world) for i in DistributedSampler(data.dataset, world, r, False)]
    if len(data.dataset) % world:
        assert len(padded) > len(set(padded))  # the training sampler would repeat chunks


@pytest.mark.slow  # three fresh processes importing torch and diffusers: about 25 s
def test_two_ddp_ranks_write_every_job_once(assets, write_config, tmp_path):
    # 22 jobs in chunks of 5: 5 chunks, 3 for rank 0 and 2 for rank 1, the last one short.
    data = {"batch_size": 5}
    ddp = write_config(tmp_path / "ddp.yaml", assets, tmp_path / "ddp", data=data)
    one = write_config(tmp_path / "one.yaml", assets, tmp_path / "one", data=data)
    _finish(_augment(ddp, "--trainer.devices", "2", "--trainer.strategy", "ddp"))
    _finish(_augment(one))

    plan = pd.read_csv(tmp_path / "ddp" / "plan.csv")
    manifest = json.loads((tmp_path / "ddp" / "manifest.json").read_text())
    keys = [k for shard in manifest["shards"].values() for k in shard["keys"]]
    assert len(plan) == 22 and sorted(keys) == sorted(plan["key"])  # once each, none lost
    assert {name.split("-")[2] for name in manifest["shards"]} == {"000", "001"}  # both ranks
    # Chunks do not depend on the ranks, so neither do the images.
    assert shard_members(tmp_path / "ddp") == shard_members(tmp_path / "one")


@pytest.mark.slow  # three fresh processes: about 30 s
def test_a_killed_run_resumes_to_the_same_keys_and_bytes(assets, write_config, tmp_path):
    slow = {"settings": {"steps": 24, "self_replace": [0.4, 0.8]}}
    killed = write_config(tmp_path / "killed.yaml", assets, tmp_path / "killed", model=slow)
    whole = write_config(tmp_path / "whole.yaml", assets, tmp_path / "whole", model=slow)
    shards = tmp_path / "killed" / "shards"
    run = _augment(killed)
    deadline = time.monotonic() + 300
    while not list(shards.glob("*.tar")) and time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()[1].decode()[-3000:]
        time.sleep(0.05)
    assert run.poll() is None  # still running: killed mid-run
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert not (tmp_path / "killed" / "manifest.json").exists()
    written = shard_members(tmp_path / "killed")
    assert 0 < len(written) < 22

    _finish(_augment(killed))  # the same command again
    _finish(_augment(whole))
    resumed, uninterrupted = shard_members(tmp_path / "killed"), shard_members(tmp_path / "whole")
    assert sorted(resumed) == sorted(uninterrupted)
    assert resumed == uninterrupted  # on CPU the PNG and JSON bytes too
    assert not list(shards.glob("*.partial"))
