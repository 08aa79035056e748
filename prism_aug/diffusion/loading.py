"""Load an SD 1.x/2.x model from a diffusers folder, a hub id, or a preset name."""

from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from huggingface_hub import is_offline_mode
from transformers import CLIPTextModel, CLIPTokenizer

from prism_aug.diffusion.build import build_components
from prism_aug.diffusion.components import SDComponents, ddim_scheduler
from prism_aug.diffusion.presets import PRESETS

SUBFOLDERS: tuple[str, ...] = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


def load_components(source: str | Path, *, seed: int = 0) -> SDComponents:
    """Load the components of a Stable Diffusion model.

    The source decides, in this order: an existing folder is read as a diffusers model
    (``save_pipeline``'s output, or a snapshot of
    ``stable-diffusion-v1-5/stable-diffusion-v1-5``); a
    name in ``PRESETS`` is built with random weights; anything else is a hub id passed to
    ``from_pretrained`` (served from the local Hugging Face cache when offline).

    The scheduler is always PRISM's DDIM over the model's own noise schedule (betas, step
    count, prediction type), see ``ddim_scheduler``: SD v1.5 ships a PNDM config.

    Args:
        source: folder, preset name (``"tiny"``, ``"sd15"``) or hub id.
        seed: weight seed, used only when source is a preset.

    Raises:
        FileNotFoundError: a folder lacks one of ``SUBFOLDERS``; the message names them.
        OSError: a hub id could not be loaded (not on the hub, or offline and not cached).
    """
    folder = Path(source)
    if folder.is_dir():
        missing = [name for name in SUBFOLDERS if not (folder / name).is_dir()]
        if missing:
            raise FileNotFoundError(
                f"{folder} is not a diffusers Stable Diffusion folder: it lacks the "
                f"subfolder(s) {missing} (needs {list(SUBFOLDERS)})"
            )
        return _from_pretrained(str(folder))
    if str(source) in PRESETS:
        return build_components(str(source), seed=seed)
    try:
        return _from_pretrained(str(source))
    except (OSError, ValueError) as err:
        offline = (
            " Hugging Face offline mode is on (HF_HUB_OFFLINE=1) and it is not in the local cache."
            if is_offline_mode()
            else ""
        )
        raise OSError(
            f"cannot load model {str(source)!r}: it is not an existing folder, not a preset "
            f"{sorted(PRESETS)}, and loading it as a hub id failed.{offline} Cause: {err}"
        ) from err


def _from_pretrained(source: str) -> SDComponents:
    """Each component's ``from_pretrained`` on its subfolder of a folder or hub repo."""
    noise_schedule = DDIMScheduler.load_config(source, subfolder="scheduler")
    return SDComponents(
        unet=UNet2DConditionModel.from_pretrained(source, subfolder="unet"),
        vae=AutoencoderKL.from_pretrained(source, subfolder="vae"),
        text_encoder=CLIPTextModel.from_pretrained(source, subfolder="text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(source, subfolder="tokenizer"),
        scheduler=ddim_scheduler(noise_schedule),
    )
