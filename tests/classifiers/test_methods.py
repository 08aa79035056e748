"""Each method against its definition: samplers of SUBY/SUBG/RWY/RWG, GroupDRO's step."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch.trainer.connectors.data_connector import _get_distributed_sampler
from torch import nn
from torch.utils.data import DataLoader

from classifiers.data import SAMPLINGS, balancing_sampler
from classifiers.dfr import DFR
from classifiers.group_dro import GroupDRO, group_mean_losses
from classifiers.jtt import JTT, misclassified
from classifiers.module import ERM
from prism_aug.data.vocabulary import FINDINGS

GROUPS = np.array([0] * 6 + [1] * 2 + [2] * 1 + [3] * 3)


def test_rwg_weights_are_inverse_group_sizes():
    sampler = balancing_sampler(GROUPS, "rwg", seed=0)
    sizes = np.bincount(GROUPS)
    np.testing.assert_allclose(sampler.weights.numpy(), 1.0 / sizes[GROUPS])
    assert sampler.num_samples == len(GROUPS) and sampler.replacement
    draws = np.bincount(GROUPS[list(balancing_sampler(GROUPS, "rwg", 1))], minlength=4)
    assert draws.sum() == len(GROUPS)
    many = np.concatenate([GROUPS[list(balancing_sampler(GROUPS, "rwg", s))] for s in range(300)])
    np.testing.assert_allclose(np.bincount(many) / len(many), 0.25, atol=0.02)  # each group 1/4


def test_subg_keeps_the_smallest_group_size_of_each_group():
    sampler = balancing_sampler(GROUPS, "subg", seed=0)
    epoch = list(sampler)
    kept = sorted(set(epoch))
    assert np.bincount(GROUPS[kept], minlength=4).tolist() == [1, 1, 1, 1]
    # As many draws as ERM's epoch: three whole shuffled passes over the 4 kept samples.
    assert len(sampler) == len(epoch) == len(GROUPS)
    assert all(sorted(epoch[i : i + 4]) == kept for i in range(0, 12, 4))
    assert sorted(set(sampler)) == kept  # the same subset every epoch
    assert epoch == list(balancing_sampler(GROUPS, "subg", seed=0))  # seeded


def test_suby_and_rwy_balance_classes():
    y = GROUPS // 2  # 8 negatives, 4 positives
    epoch = list(balancing_sampler(y, "suby", seed=0))
    kept = sorted(set(epoch))
    assert np.bincount(y[kept]).tolist() == [4, 4]
    assert len(epoch) == len(y) and np.bincount(epoch).max() == 2  # 12 draws: 1.5 passes
    np.testing.assert_allclose(balancing_sampler(y, "rwy", 0).weights.numpy(),
                               np.where(y == 1, 1 / 4, 1 / 8))  # fmt: skip
    shuffle = balancing_sampler(y, "none", 0)
    assert sorted(shuffle) == list(range(len(y))) and list(shuffle) != list(shuffle)
    assert list(balancing_sampler(y, "none", 0)) == list(balancing_sampler(y, "none", 0))


def test_every_sampler_draws_the_given_length_an_epoch():
    for how in SAMPLINGS:
        assert len(list(balancing_sampler(GROUPS, how, seed=0, length=7))) == 7, how
    assert len(set(balancing_sampler(GROUPS, "none", seed=0, length=7))) == 7  # no repeats


def test_under_ddp_two_ranks_split_every_epoch_of_every_sampler():
    for how in SAMPLINGS:
        whole = balancing_sampler(GROUPS, how, seed=0, length=8)
        ranks = [
            _get_distributed_sampler(  # what Lightning puts in a DDP rank's loader
                DataLoader(range(len(GROUPS)), sampler=balancing_sampler(GROUPS, how, 0, 8)),
                shuffle=True, overfit_batches=0, num_replicas=2, rank=rank,
            )
            for rank in (0, 1)
        ]  # fmt: skip
        for _ in range(2):
            assert sorted([*ranks[0], *ranks[1]]) == sorted(whole), how


def test_group_dro_step_matches_its_definition():
    dro = GroupDRO(model_name="resnet18", step_size=0.5, adjustment=2.0)
    dro.group_sizes.copy_(torch.tensor([4.0, 1.0, 9.0, 16.0]))
    losses = torch.tensor([1.0, 3.0, 2.0, 4.0, 6.0])  # groups 0, 0, 1, 3, 3; group 2 absent
    groups = torch.tensor([0, 0, 1, 3, 3])
    sums, counts = group_mean_losses(losses, groups)
    assert sums.tolist() == [4.0, 2.0, 0.0, 10.0] and counts.tolist() == [2.0, 1.0, 0.0, 2.0]

    loss = dro.objective(losses, {"group": groups})
    group_loss = [2.0, 2.0, 0.0, 5.0]
    adjusted = [g + 2.0 / math.sqrt(n) for g, n in zip(group_loss, [4, 1, 9, 16], strict=True)]
    q = np.array([0.25 * math.exp(0.5 * v) for v in adjusted])
    q /= q.sum()
    np.testing.assert_allclose(dro.q.numpy(), q, rtol=1e-6)
    assert loss.item() == pytest.approx(float(q @ np.array(group_loss)), rel=1e-6)

    dro.objective(losses, {"group": groups})  # q keeps moving toward the worst group
    assert dro.q.argmax().item() == 3 and dro.q[3] > q[3]


def test_group_dro_under_ddp_weighs_the_global_batch(monkeypatch):
    # Two ranks; group 1's only sample is on rank 0. DDP averages the ranks' gradients, so
    # the mean of their losses must be one process's loss over the whole batch.
    losses = [torch.tensor([1.0, 3.0, 2.0]), torch.tensor([4.0, 6.0, 5.0])]
    groups = [torch.tensor([0, 0, 1]), torch.tensor([3, 3, 0])]
    whole = GroupDRO(model_name="resnet18", step_size=0.5)
    expected = whole.objective(torch.cat(losses), {"group": torch.cat(groups)})
    per_rank = [group_mean_losses(x, g) for x, g in zip(losses, groups, strict=True)]
    totals = torch.stack([per_rank[0][k] + per_rank[1][k] for k in (0, 1)])  # sums, counts
    ranks = []
    for rank_losses, rank_groups in zip(losses, groups, strict=True):
        dro = GroupDRO(model_name="resnet18", step_size=0.5)
        strategy = SimpleNamespace(reduce=lambda tensor, reduce_op: totals)
        dro._trainer = SimpleNamespace(world_size=2, strategy=strategy)
        monkeypatch.setattr(dro, "log_dict", lambda *args, **kwargs: None)
        ranks.append(dro.objective(rank_losses, {"group": rank_groups}))
        torch.testing.assert_close(dro.q, whole.q)
    assert ((ranks[0] + ranks[1]) / 2).item() == pytest.approx(expected.item(), rel=1e-6)


def test_jtt_weights_the_error_set_by_lambda_up(tmp_path):
    path = tmp_path / "errors.json"
    path.write_text(json.dumps({"errors": [1, 3], "train_size": 5}))
    jtt = JTT(error_set=path, upweight=4.0)
    losses = torch.tensor([0.0, 2.0, 0.0, 2.0, 0.0])
    loss = jtt.objective(losses, {"index": torch.arange(5)})
    assert loss.item() == pytest.approx((4 * 2 + 4 * 2) / (1 + 4 + 1 + 4 + 1))
    # Repeating each error 4 times in the data gives the same mean loss.
    repeated = torch.tensor([0.0] + [2.0] * 4 + [0.0] + [2.0] * 4 + [0.0])
    assert loss.item() == pytest.approx(repeated.mean().item())


class _Threshold(nn.Module):
    """A stand-in network: logit = mean pixel, so bright images are called positive."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))[:, None]


def test_the_error_set_is_what_stage_one_gets_wrong():
    model = ERM()
    model.network = _Threshold()
    images = torch.stack([torch.full((1, 4, 4), v) for v in (-1.0, 1.0, -1.0, 1.0)])
    batch = {"index": torch.arange(4), "image": images, "y": torch.tensor([0, 0, 1, 1])}
    assert misclassified(model, [batch]) == [1, 2]


def test_dfr_retrains_only_the_head_of_the_base_model(tmp_path):
    base = ERM()
    torch.save({"state_dict": base.state_dict()}, tmp_path / "base.ckpt")
    dfr = DFR(base=tmp_path / "base.ckpt")
    for (name, a), b in zip(dfr.network.state_dict().items(), base.network.state_dict().values(),
                            strict=True):  # fmt: skip
        assert torch.equal(a, b), name
    trainable = {n for n, p in dfr.network.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}
    dfr.train()
    assert not dfr.network.training  # batch-norm statistics stay the base model's
    optimised = {
        id(p) for group in dfr.configure_optimizers().param_groups for p in group["params"]
    }
    assert optimised == {id(p) for p in dfr.head.parameters()}


def test_channels_last_changes_the_layout_not_the_logits():
    plain, nhwc = ERM(), ERM(channels_last=True)
    nhwc.load_state_dict(plain.state_dict())

    def nhwc_weights(model: ERM) -> bool:  # not the stem's: with one channel it is both
        return model.network.layer1[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)

    assert nhwc_weights(nhwc) and not nhwc_weights(plain)
    images = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(nhwc.eval()(images), plain.eval()(images))


def test_the_multilabel_loss_leaves_masked_findings_out():
    model = ERM(findings=["Cardiomegaly", "Pleural Effusion", "Edema"], target="Pleural Effusion")
    assert model.network.get_classifier().out_features == 3 and model.target_column == 1
    codes = torch.full((2, 14), -1)
    columns = [FINDINGS.index(f) for f in ("Cardiomegaly", "Pleural Effusion", "Edema")]
    codes[0, columns] = torch.tensor([1, 0, -1])  # Edema masked for the first image
    codes[1, columns] = torch.tensor([0, 1, 1])
    logits = torch.tensor([[2.0, -1.0, 5.0], [0.0, 3.0, -2.0]])
    losses = model.sample_losses(logits, {"findings": codes})
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    first = (
        bce(torch.tensor(2.0), torch.tensor(1.0)) + bce(torch.tensor(-1.0), torch.tensor(0.0))
    ) / 2
    second = bce(logits[1], torch.tensor([0.0, 1.0, 1.0]))
    torch.testing.assert_close(losses, torch.stack([first, second]))
    with pytest.raises(ValueError, match="not among the findings"):
        ERM(findings=["Edema"], target="Pleural Effusion")


def test_a_finding_with_one_class_has_no_auroc_and_stays_out_of_the_mean(monkeypatch):
    model = ERM(findings=["Cardiomegaly", "Edema"], target="Cardiomegaly")
    logged = {}
    monkeypatch.setattr(model, "log_dict", lambda values, **kwargs: logged.update(values))
    codes = torch.zeros(4, 14, dtype=torch.long)  # no image has Edema
    codes[:, FINDINGS.index("Cardiomegaly")] = torch.tensor([0, 1, 0, 1])
    batch = {
        "index": torch.arange(4), "image": torch.rand(4, 1, 32, 32), "y": codes[:, 2],
        "group": torch.tensor([0, 2, 1, 3]), "findings": codes,
    }  # fmt: skip
    with torch.no_grad():
        model._evaluate(batch, "test")
    model._log_metrics("test")
    assert math.isnan(logged["test/auroc_Edema"])  # torchmetrics' own answer is 0
    assert logged["test/mean_auroc"] == logged["test/auroc_Cardiomegaly"]
