"""Presets build the right architectures, seeded; the tiny one runs at 64 px."""

from __future__ import annotations

import pytest
import torch

from prism_aug.diffusion import (
    PRESETS,
    build_components,
    ddim_scheduler,
    from_vae_channels,
    preset_configs,
    to_vae_channels,
)


@pytest.fixture(scope="module")
def tiny():
    return build_components("tiny", seed=0)


def test_sd15_has_sd_v15_parameter_counts() -> None:
    components = build_components("sd15", device="meta")  # shapes only: no 1B-weight init
    assert components.parameter_counts() == {
        "unet": 859_520_964,
        "vae": 83_653_863,
        "text_encoder": 123_060_480,
    }
    assert components.vae_scale_factor == 8
    assert components.vae.config.scaling_factor == 0.18215
    assert components.unet.config.cross_attention_dim == 768
    assert components.text_encoder.config.hidden_act == "quick_gelu"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_conditions_the_unet_on_its_text_encoder(preset: str) -> None:
    configs = preset_configs(preset)
    assert configs.unet["cross_attention_dim"] == configs.text_encoder["hidden_size"]
    assert configs.text_encoder["vocab_size"] == 49408
    assert configs.text_encoder["max_position_embeddings"] == 77


def test_same_seed_same_weights(tiny) -> None:
    again = build_components("tiny", seed=0)
    other = build_components("tiny", seed=1)
    for name in ("unet", "vae", "text_encoder"):
        ours = getattr(tiny, name).state_dict()
        assert all(torch.equal(v, getattr(again, name).state_dict()[k]) for k, v in ours.items())
        assert not torch.equal(*(next(getattr(c, name).parameters()) for c in (tiny, other)))


def test_build_leaves_the_callers_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_components("tiny", unet_channels=(8, 16), vae_channels=(8, 16), text_hidden_size=16)
    assert torch.equal(torch.rand(3), expected)


def test_tiny_forward_shapes(tiny) -> None:
    images = torch.rand(2, 1, 64, 64) * 2 - 1  # grayscale in [-1, 1]
    ids = tiny.tokenizer(
        ["Chest X-ray showing Pleural Effusion", ""],
        padding="max_length",
        max_length=77,
        return_tensors="pt",
    ).input_ids
    with torch.no_grad():
        latents = tiny.vae.encode(to_vae_channels(images)).latent_dist.sample()
        text = tiny.text_encoder(ids).last_hidden_state
        noise = tiny.unet(latents, torch.tensor([1, 999]), text).sample
        decoded = from_vae_channels(tiny.vae.decode(latents).sample)
    assert latents.shape == (2, 4, 32, 32)
    assert text.shape == (2, 77, 64)
    assert noise.shape == latents.shape
    assert decoded.shape == images.shape
    assert torch.isfinite(noise).all() and torch.isfinite(decoded).all()
    assert tiny.vae_scale_factor == 2


def test_tiny_is_small(tiny) -> None:
    counts = tiny.parameter_counts()
    assert counts == {"unet": 4_132_836, "vae": 658_375, "text_encoder": 3_267_136}
    assert tiny.unet.config.attention_head_dim == 2  # diffusers: the number of heads
    assert tiny.unet.config.down_block_types[0] == "DownBlock2D"  # no attention at 32x32


def test_overrides_reach_the_configs() -> None:
    configs = preset_configs("tiny", image_size=128, image_channels=1, text_hidden_size=32)
    assert configs.unet["sample_size"] == 64
    assert configs.vae["in_channels"] == configs.vae["out_channels"] == 1
    assert configs.unet["cross_attention_dim"] == 32


def test_cross_attention_levels_are_the_coarsest() -> None:
    unet = preset_configs("tiny", cross_attention_levels=1).unet
    assert unet["down_block_types"] == ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D")
    assert unet["up_block_types"] == ("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D")


@pytest.mark.parametrize(
    ("preset", "overrides", "message"),
    [
        ("big", {}, r"unknown preset 'big'; valid presets: \['sd15', 'tiny'\]"),
        ("tiny", {"width": 3}, r"no hyper-parameter \['width'\]; valid: .*'unet_channels'"),
        ("sd15", {"image_size": 256}, r"no hyper-parameter \['image_size'\]; valid: \[\]"),
        ("tiny", {"image_size": 60}, r"image_size=60 must be divisible"),
        ("tiny", {"cross_attention_levels": 0}, r"cross_attention_levels=0 must be in 1\.\.3"),
        ("tiny", {"cross_attention_levels": 4}, r"cross_attention_levels=4 must be in 1\.\.3"),
    ],
)
def test_bad_preset_or_override_is_named(preset: str, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        preset_configs(preset, **overrides)


def test_ddim_keeps_the_noise_schedule_and_sets_prism_options() -> None:
    pndm_v_prediction = {
        "_class_name": "PNDMScheduler",
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "num_train_timesteps": 1000,
        "prediction_type": "v_prediction",
        "skip_prk_steps": True,
        "clip_sample": True,
    }
    scheduler = ddim_scheduler(pndm_v_prediction)
    assert scheduler.config.prediction_type == "v_prediction"
    assert not scheduler.config.clip_sample
    default = ddim_scheduler().config
    assert (default.beta_schedule, default.beta_start, default.beta_end) == (
        "scaled_linear",
        0.00085,
        0.012,
    )
    assert (default.clip_sample, default.set_alpha_to_one, default.steps_offset) == (
        False,
        False,
        1,
    )
    assert default.prediction_type == "epsilon"


def test_vae_channels_round_trip() -> None:
    gray = torch.randn(2, 1, 8, 8)
    three = to_vae_channels(gray)
    assert three.shape == (2, 3, 8, 8)
    torch.testing.assert_close(from_vae_channels(three), gray)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\), got shape \(2, 3, 8, 8\)"):
        to_vae_channels(three)


def test_tiny_trains_to_zero_terminal_snr_and_sd15_keeps_sd_v1s_schedule() -> None:
    tiny = build_components("tiny", device="meta").scheduler
    assert tiny.config.prediction_type == "v_prediction"
    assert tiny.alphas_cumprod[-1] == 0  # x_T holds nothing of the image
    tiny.set_timesteps(20)
    assert tiny.timesteps[0] == 999  # sampling starts where SNR is 0
    sd_v1 = build_components("tiny", device="meta", zero_terminal_snr=False).scheduler
    assert sd_v1.config.prediction_type == "epsilon"
    assert sd_v1.alphas_cumprod[-1] ** 0.5 > 0.06  # SD v1 leaks 6.8% of the image into x_T
    assert build_components("sd15", device="meta").scheduler.config == sd_v1.config
