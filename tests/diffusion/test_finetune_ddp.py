"""DDP on two CPU processes (gloo): the ranks train in step and end with identical weights,
from noise of their own.

The run goes through a script in its own process with ``strategy="ddp"``, which Lightning
relaunches once per rank. Not ``ddp_spawn``: it passes the module to the ranks through
torch.multiprocessing, which puts CPU tensors in shared memory, so the "two" ranks would
update one set of weights and equal weights would prove nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = """
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

sys.path[:0] = [{tests!r}, {shared!r}]
from conftest import _small_datamodule, _small_module, _small_trainer


class SaveRankWeights(L.Callback):
    def on_train_end(self, trainer, module):
        state = {{
            "weights": [p.detach().clone() for p in module.trained_parameters()],
            "ema": [p.clone() for p in module.ema.shadow_params],
            "shared": any(p.is_shared() for p in module.trained_parameters()),
            "step": trainer.global_step,
            "world_size": trainer.world_size,
            "noise_seed": module.noise_generator.initial_seed(),
        }}
        torch.save(state, Path({out!r}) / f"rank{{trainer.global_rank}}.pt")


if __name__ == "__main__":
    out = Path({out!r})
    trainer = _small_trainer(
        out, devices=2, strategy="ddp", max_steps=3, callbacks=[SaveRankWeights()]
    )
    datamodule = _small_datamodule(Path({data!r}), latent_cache=str(out / "cache"))
    trainer.fit(_small_module(), datamodule)
"""


@pytest.mark.slow  # two fresh processes importing torch and diffusers: about 50 s
def test_ddp_ranks_stay_in_sync(synthcxr_32: Path, tmp_path: Path) -> None:
    script = tmp_path / "ddp_fit.py"
    tests = str(Path(__file__).parent)
    shared = str(Path(__file__).parents[1])  # small_models.py
    script.write_text(
        SCRIPT.format(tests=tests, shared=shared, out=str(tmp_path), data=str(synthcxr_32))
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["step"] for r in ranks] == [3, 3]
    assert not any(r["shared"] for r in ranks)  # two processes, two copies of the weights
    # seed_everything seeds both ranks alike; their noise, t and caption dropout differ.
    assert ranks[0]["noise_seed"] != ranks[1]["noise_seed"]
    for key in ("weights", "ema"):
        for a, b in zip(ranks[0][key], ranks[1][key], strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert list((tmp_path / "cache").glob("*/index.json"))
