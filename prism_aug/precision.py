"""Low precision only where this machine computes it natively.

On a CPU, autocast to bf16 (or fp16) runs oneDNN's low-precision kernels where the CPU has
them (AVX512 or AMX on x86, BF16 on Arm) and slow reference kernels where it has not: on a
2-core AVX2-only EPYC a resnet18 training step (batch 64, 64 px) took 39.7 s under bf16 autocast
against 1.37 s in float32 (benchmarks/bench_precision.py), where an AVX512-BF16 EPYC ran it at
twice float32's speed. So the configs ask for ``bf16-mixed`` and a machine without the kernels
runs ``32-true`` instead, with a warning, rather than twenty times slower.
"""

from __future__ import annotations

import warnings

import torch

# The Trainer's low-precision flags and the dtype each computes in.
LOW_PRECISION_DTYPES: dict[str, torch.dtype] = {
    **dict.fromkeys(("bf16", "bf16-mixed", "bf16-true"), torch.bfloat16),
    **dict.fromkeys(("16", "16-mixed", "16-true"), torch.float16),
}
FULL_PRECISION = "32-true"


def cpu_has_low_precision_kernels(dtype: torch.dtype) -> bool:
    """Whether oneDNN has native kernels for ``dtype`` (bf16 or fp16) on this CPU."""
    if dtype == torch.bfloat16:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())


def fast_autocast(device_type: str, dtype: torch.dtype = torch.bfloat16) -> bool:
    """Whether autocast to ``dtype`` on ``device_type`` is worth turning on here."""
    return device_type != "cpu" or cpu_has_low_precision_kernels(dtype)


def native_precision(precision: str | int | None, accelerator: object) -> str | int | None:
    """``precision``, or ``32-true`` where it asks for bf16/fp16 on a CPU without kernels.

    Args:
        precision: the Trainer's precision flag as configured.
        accelerator: the Trainer's accelerator flag; only ``"cpu"``, or ``"auto"`` on a
            machine without CUDA, counts as the CPU.
    """
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    name = str(precision)
    dtype = LOW_PRECISION_DTYPES.get(name)
    if not on_cpu or dtype is None or fast_autocast("cpu", dtype):
        return precision
    warnings.warn(
        f"trainer.precision={name!r}: this CPU has no {dtype} kernels, where autocast runs "
        f"many times slower than float32; running {FULL_PRECISION!r} instead",
        stacklevel=2,
    )
    return FULL_PRECISION
