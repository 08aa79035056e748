"""Mixed precision falls back to float32 on CPUs without low-precision kernels."""

from __future__ import annotations

import warnings

import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringDataModule, BoringModel
from small_models import small_preset

from prism_aug import precision
from prism_aug.diffusion.build import build_components
from prism_aug.editing.denoiser import GuidedDenoiser
from prism_aug.lightning_cli import PrismCLI


@pytest.fixture
def kernels(monkeypatch: pytest.MonkeyPatch):
    """Set which low-precision dtypes the CPU pretends to have kernels for."""

    def pretend(*dtypes: torch.dtype) -> None:
        monkeypatch.setattr(precision, "cpu_has_low_precision_kernels", lambda d: d in dtypes)

    return pretend


@pytest.mark.parametrize("flag", ["bf16-mixed", "bf16-true", "16-mixed", "16"])
def test_low_precision_on_a_cpu_without_kernels_runs_float32(kernels, flag: str) -> None:
    kernels()
    with pytest.warns(UserWarning, match="no torch.*kernels.*'32-true'"):
        assert precision.native_precision(flag, "cpu") == "32-true"


def test_low_precision_is_kept_where_the_kernels_exist(kernels) -> None:
    kernels(torch.bfloat16)
    assert precision.native_precision("bf16-mixed", "cpu") == "bf16-mixed"
    with pytest.warns(UserWarning):
        assert precision.native_precision("16-mixed", "cpu") == "32-true"


def test_other_precisions_and_accelerators_are_untouched(kernels, recwarn) -> None:
    kernels()
    assert precision.native_precision("32-true", "cpu") == "32-true"
    assert precision.native_precision(64, "cpu") == 64
    assert precision.native_precision("bf16-mixed", "cuda") == "bf16-mixed"
    assert precision.native_precision("16-mixed", "gpu") == "16-mixed"
    assert not recwarn.list
    assert precision.fast_autocast("cuda")
    assert not precision.fast_autocast("cpu")


def test_auto_accelerator_counts_as_cpu_without_cuda(kernels, monkeypatch) -> None:
    kernels()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning):
        assert precision.native_precision("bf16-mixed", "auto") == "32-true"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert precision.native_precision("bf16-mixed", "auto") == "bf16-mixed"


@pytest.mark.parametrize("has_bf16, expected", [(False, "32-true"), (True, "bf16-mixed")])
def test_the_cli_trainer_gets_the_native_precision(kernels, has_bf16, expected) -> None:
    kernels(*([torch.bfloat16] if has_bf16 else []))
    args = ["--trainer.accelerator=cpu", "--trainer.precision=bf16-mixed", "--trainer.logger=false"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = PrismCLI(BoringModel, BoringDataModule, args=args, run=False)
    assert cli.trainer.precision == expected
    fell_back = any("trainer.precision='bf16-mixed'" in str(w.message) for w in caught)
    assert fell_back != has_bf16


@pytest.mark.parametrize("has_bf16", [False, True])
def test_the_editors_unet_autocasts_only_where_the_cpu_has_kernels(kernels, has_bf16) -> None:
    kernels(*([torch.bfloat16] if has_bf16 else []))
    unet = build_components("tiny", seed=0, **small_preset()).unet
    latents, text = torch.randn(2, 4, 16, 16), torch.randn(2, 77, 32)
    full = GuidedDenoiser(unet)(latents, 500, text)
    bf16 = GuidedDenoiser(unet, torch.bfloat16)(latents, 500, text)
    assert torch.equal(bf16, full) != has_bf16  # bf16 rounding shows only where it ran
