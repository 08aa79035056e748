"""GroupDRO (Sagawa et al., ICLR 2020): minimise the loss of the worst group, online.

Group weights q live on the simplex. Each step, with the batch's mean loss L_g of each group
(0 for a group absent from the batch) and the generalisation adjustment C / sqrt(n_g)
(n_g the group's training size):

    q_g <- q_g * exp(eta * (L_g + C / sqrt(n_g)));   q <- q / sum(q)
    loss = sum_g q_g * L_g

as the authors' batched implementation does. Under DDP the group loss sums and counts are
summed over ranks for the update of q, so every rank keeps the same q, and each rank's loss
is its share of the global batch's sum_g q_g * L_g (its group sums over the global counts,
times the number of ranks, which DDP's gradient average divides out): a group absent from
one rank's batch keeps its full weight.
"""

from __future__ import annotations

import torch

from classifiers.metrics import N_GROUPS
from classifiers.module import ERM


def group_mean_losses(
    losses: torch.Tensor, groups: torch.Tensor, n_groups: int = N_GROUPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group loss sums and counts ``(n_groups,)`` of per-sample losses ``(B,)``."""
    sums = torch.zeros(n_groups, dtype=losses.dtype, device=losses.device)
    counts = torch.zeros(n_groups, dtype=losses.dtype, device=losses.device)
    sums.index_add_(0, groups, losses)
    counts.index_add_(0, groups, torch.ones_like(losses))
    return sums, counts


class GroupDRO(ERM):
    """ERM whose objective is the q-weighted group loss (see the module docstring).

    Args:
        step_size: eta, the exponentiated-gradient step of q (0.01 in the paper).
        adjustment: C of the generalisation adjustment (0 disables it).
        **kwargs: ERM's.
    """

    def __init__(self, step_size: float = 0.01, adjustment: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.step_size, self.adjustment = step_size, adjustment
        self.register_buffer("q", torch.full((N_GROUPS,), 1.0 / N_GROUPS))
        self.register_buffer("group_sizes", torch.ones(N_GROUPS))

    def on_fit_start(self) -> None:
        sizes = self.trainer.datamodule.group_sizes().to(self.q)
        self.group_sizes.copy_(sizes.clamp(min=1))

    def objective(self, losses: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        sums, counts = group_mean_losses(losses, batch["group"])
        world, global_counts = self.update_weights(sums.detach(), counts)
        return world * (self.q * sums / global_counts.clamp(min=1)).sum()

    @torch.no_grad()
    def update_weights(self, sums: torch.Tensor, counts: torch.Tensor) -> tuple[int, torch.Tensor]:
        """One exponentiated-gradient step of q from this step's group loss sums and counts
        (summed over ranks under DDP); returns the number of ranks and the summed counts."""
        trainer = self._trainer
        world = trainer.world_size if trainer is not None else 1
        if world > 1:
            both = trainer.strategy.reduce(torch.stack([sums, counts]), reduce_op="sum")
            sums, counts = both[0], both[1]
        adjusted = sums / counts.clamp(min=1) + self.adjustment / self.group_sizes.sqrt()
        q = self.q * torch.exp(self.step_size * adjusted)
        self.q.copy_(q / q.sum())
        if trainer is not None:
            self.log_dict({f"train/q_g{g}": self.q[g] for g in range(N_GROUPS)})
        return world, counts
