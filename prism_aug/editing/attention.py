"""Prompt-to-Prompt attention control (Hertz et al. 2022) through diffusers attention processors.

The editor runs every branch of an edit in one UNet call: a source branch (the image's own
prompt, following its inversion) and target branches (the edited prompt, one per candidate).
Each attention layer of the UNet gets a ``ControlledAttnProcessor``; it computes attention as
diffusers' ``AttnProcessor`` does and lets the shared ``AttentionController`` change the
probabilities of the conditional half of the batch (P2P leaves the unconditional half free):

- cross-attention of a target, while ``step < cross_steps``: its tokens take the source's maps
  through a token map (word replacement, or refinement with a token alignment), tokens without
  a source counterpart keep their own, and the edited tokens are re-weighted;
- self-attention of a target, while ``step < self_steps``: the source's maps (injection), in
  layers of at most ``SELF_INJECTION_MAX_TOKENS`` queries (P2P's 32 x 32: SD's 64 x 64
  layers keep their own);
- cross-attention maps of the edited words, summed over heads, layers and steps, for the
  local blend; as in P2P it reads the layers at a quarter of the latent side (SD's 16 x 16
  of 64 x 64; the nearest where a small UNet has none there).

The candidates of an edit differ only in how long self-attention is injected, so until a
candidate's injection ends it runs exactly as the others still injecting: each step runs only
its distinct branches through the UNet (``BranchControl.distinct_rows``) and hands every twin
its representative's result. For PRISM's sweep 0.4..0.8 with its source that is 76 of 120
branch-steps per image at 20 steps, 190 of 300 at 50.

Injected self-attention is SDPA over the source's queries and keys and the target's own
values, which is ``softmax(q_src k_src^T) v_tgt`` without its maps: SD v1.5's 32 x 32 layers
for 8 images x 6 branches would otherwise hold 2 x 48 x 8 heads x 1024^2 probabilities. Cross-
attention materialises probabilities only at the steps that control or record them; every
other layer and step runs SDPA.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention

from prism_aug.editing.masks import threshold_maps
from prism_aug.editing.token_maps import TokenMap

# P2P injects self-attention only in layers with at most 32 x 32 queries.
SELF_INJECTION_MAX_TOKENS = 32 * 32
# P2P's local blend reads the 16 x 16 cross-attention layers of SD's 64 x 64 latents.
BLEND_MAP_FRACTION = 1 / 4


@dataclass
class BranchControl:
    """What the controller does to each of the N branches of a batch (source or target).

    Attributes:
        source: ``(N,)`` index of each branch's source branch (its own index for a source).
        token_map: ``(N, L, L)`` target token j's cross-attention is
            ``sum_i source_maps[..., i] * token_map[n, i, j]``; identity for a source.
        own_tokens: ``(N, L)`` 1 where a target token keeps its own cross-attention (it has
            no counterpart in the source prompt), else 0.
        token_weights: ``(N, L)`` factors on the cross-attention of each token (P2P's
            re-weighting), applied while cross-attention is controlled; 1 leaves a token.
        cross_steps: ``(N,)`` cross-attention is controlled at steps ``< cross_steps``.
        self_steps: ``(N,)`` self-attention is injected from the source at steps
            ``< self_steps``.
        blend_tokens: ``(N, L)`` 1 for the tokens whose cross-attention maps make up the
            branch's part of the local-blend mask (edited words), else 0.
    """

    source: torch.Tensor
    token_map: torch.Tensor
    own_tokens: torch.Tensor
    token_weights: torch.Tensor
    cross_steps: torch.Tensor
    self_steps: torch.Tensor
    blend_tokens: torch.Tensor

    def __len__(self) -> int:
        return self.source.shape[0]

    def to(self, device: torch.device | str) -> BranchControl:
        return BranchControl(**{k: v.to(device) for k, v in vars(self).items()})

    @staticmethod
    def cat(parts: list[BranchControl]) -> BranchControl:
        """Branches of several edits side by side; source indices are shifted to match."""
        offsets = torch.tensor([0] + [len(p) for p in parts[:-1]]).cumsum(0)
        fields = {k: torch.cat([getattr(p, k) for p in parts]) for k in vars(parts[0])}
        fields["source"] = torch.cat([p.source + o for p, o in zip(parts, offsets, strict=True)])
        return BranchControl(**fields)

    def distinct_rows(self, steps: int, text: Sequence[int]) -> list[StepRows]:
        """For each step, the branches that must run through the UNet and which of them
        stands in for each branch.

        Two branches are twins through step i when they share source, text and token
        controls and their cross- and self-attention control was on at the same steps up to
        i: they start from the same latents, so they have computed the same thing. A step
        runs the first branch of each group of twins.

        Args:
            steps: denoising steps.
            text: ``(N,)`` index of each branch's text embedding (equal index: equal text).
        """
        b, n = self.to("cpu"), len(self)  # planned on the host
        static = torch.cat(
            [
                b.source[:, None].float(),
                torch.as_tensor(text, dtype=torch.float32)[:, None],
                b.token_map.flatten(1).float(),
                b.own_tokens.float(),
                b.token_weights.float(),
                b.blend_tokens.float(),
            ],
            dim=1,
        )
        control_steps = torch.stack([b.cross_steps, b.self_steps], 1).float()
        index = torch.arange(n)
        plan: list[StepRows] = []
        for step in range(steps):
            control = control_steps.clamp_max(step + 1)  # when control was on, up to step
            _, group = torch.unique(torch.cat([static, control], 1), dim=0, return_inverse=True)
            first = torch.full((n,), n).scatter_reduce(0, group, index, "amin")
            representative = first[group]
            if plan and torch.equal(plan[-1].rows[plan[-1].expand], representative):
                plan.append(plan[-1])
                continue
            rows = representative.unique()  # sorted
            expand = torch.searchsorted(rows, representative)
            controls = BranchControl(**{k: v[rows] for k, v in vars(b).items()})
            controls.source = expand[b.source[rows]]
            plan.append(StepRows(rows, expand, controls))
        return plan


@dataclass(frozen=True)
class StepRows:
    """The branches one step runs through the UNet (see ``BranchControl.distinct_rows``).

    Attributes:
        rows: ``(M,)`` ascending indices of the branches run.
        expand: ``(N,)`` position in ``rows`` of the branch that stands in for each branch.
        branches: the controls of ``rows``, their sources indexed into ``rows``.
    """

    rows: torch.Tensor
    expand: torch.Tensor
    branches: BranchControl

    @staticmethod
    def every(branches: BranchControl) -> StepRows:
        """Every branch run (no twins)."""
        index = torch.arange(len(branches), device=branches.source.device)
        return StepRows(index, index, branches)

    def to(self, device: torch.device | str) -> StepRows:
        return StepRows(self.rows.to(device), self.expand.to(device), self.branches.to(device))


class AttentionController:
    """Shared state of the P2P processors: the branches, the current step, the blend maps.

    Args:
        branches: per-branch control. The UNet batch holds the rows of ``active``,
            ``[uncond(M), cond(M)]`` for CFG or ``cond(M)`` without (all N unless the editor
            sets ``active`` to a step's distinct rows).
        latent_size: ``(h, w)`` of the latents: which layers make the local blend, and the
            size of its mask.
        record_blend: sum the edited words' cross-attention maps (for ``blend_mask``).
    """

    def __init__(
        self, branches: BranchControl, latent_size: tuple[int, int], record_blend: bool = True
    ) -> None:
        self.branches = branches
        self.latent_size = latent_size
        self.record_blend = record_blend
        self.step = 0
        self.active = StepRows.every(branches)  # the branches this step runs
        # Python ints, so that deciding a layer's path never waits on the device.
        self._cross_until = int(branches.cross_steps.max())
        self._self_until = int(branches.self_steps.max())
        self._maps: dict[tuple[int, int], torch.Tensor] = {}  # (h', w') -> (N, h', w')

    def wants_cross_probabilities(self) -> bool:
        """Whether this step needs cross-attention probabilities (else the layer runs SDPA)."""
        return self.record_blend or self.step < self._cross_until

    def injects_self(self, query_size: int) -> bool:
        """Whether a self-attention layer of ``query_size`` queries is injected this step."""
        return self.step < self._self_until and query_size <= SELF_INJECTION_MAX_TOKENS

    def inject_source(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, heads, L, d)`` (queries or keys; B is M or 2M, uncond first) with each
        injected target's conditional rows replaced by its source's."""
        b = self.active.branches
        cond = x[-len(b) :]
        active = (self.step < b.self_steps).view(-1, 1, 1, 1)
        return self._with_cond(x, torch.where(active, cond[b.source], cond))

    def cross(self, probs: torch.Tensor, query_size: int) -> torch.Tensor:
        """Controlled cross-attention probabilities ``(B, heads, Lq, Lk)``; B is M or 2M."""
        return self._with_cond(probs, self._cross(probs[-len(self.active.rows) :], query_size))

    def _with_cond(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``x`` (B = M or 2M, uncond first) with its conditional M rows replaced by ``cond``."""
        m = len(self.active.rows)
        return torch.cat([x[:-m], cond]) if x.shape[0] > m else cond

    def _cross(self, own: torch.Tensor, query_size: int) -> torch.Tensor:
        b = self.active.branches
        if self.record_blend:
            self._record(own, query_size)
        replaced = torch.einsum("nhqi,nij->nhqj", own[b.source], b.token_map.to(own.dtype))
        keep = b.own_tokens.to(own.dtype)[:, None, None, :]
        controlled = (replaced * (1 - keep) + own * keep) * b.token_weights.to(own.dtype)[
            :, None, None, :
        ]
        active = (self.step < b.cross_steps).view(-1, 1, 1, 1)
        return torch.where(active, controlled, own)

    def _record(self, own: torch.Tensor, query_size: int) -> None:
        """Add the maps of each branch's blend tokens at this layer's resolution (a twin adds
        its representative's)."""
        h, w = self.latent_size
        side = round((query_size * w / h) ** 0.5)  # a (h', w') = (q / side, side) map
        size = (query_size // side, side)
        words = torch.einsum("nhqj,nj->nq", own.float(), self.active.branches.blend_tokens.float())
        maps = words.view(-1, *size)[self.active.expand]
        self._maps[size] = self._maps[size] + maps if size in self._maps else maps

    @property
    def blend_maps(self) -> torch.Tensor:
        """The recorded maps ``(N, h', w')`` of the blend layers: those nearest a quarter of
        the latent side (the finer on a tie)."""
        if not self._maps:
            raise RuntimeError("no cross-attention maps recorded for the local blend yet")
        quarter = self.latent_size[0] * BLEND_MAP_FRACTION
        return self._maps[min(self._maps, key=lambda size: (abs(size[0] - quarter), -size[0]))]

    def blend_mask(self, threshold: float, dilation: int = 1) -> torch.Tensor:
        """P2P's local-blend mask of each target ``(N, 1, h, w)`` in {0, 1} (sources: 0).

        A target's mask is the union of its own edited words' maps (words it adds) and its
        source's (words it removes), each dilated by ``dilation`` pixels of the blend layers'
        maps, divided by its maximum and thresholded (``masks.threshold_maps``), then brought
        to the latents (nearest).
        """
        b = self.branches
        masks = threshold_maps(self.blend_maps, threshold, dilation, from_minimum=False)
        masks = F.interpolate(masks, size=self.latent_size, mode="nearest")
        is_target = b.source != torch.arange(len(b), device=b.source.device)
        return torch.maximum(masks, masks[b.source]) * is_target.view(-1, 1, 1, 1).float()


class ControlledAttnProcessor:
    """diffusers attention with the probabilities passed through an ``AttentionController``.

    Equal to ``AttnProcessor`` (and to SDPA when nothing is controlled at the step) for the
    attention blocks of ``UNet2DConditionModel``: no spatial or group norm, no residual.
    """

    def __init__(self, controller: AttentionController, is_cross: bool) -> None:
        self.controller = controller
        self.is_cross = is_cross

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs: object,
    ) -> torch.Tensor:
        batch, length, _ = hidden_states.shape
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        heads = attn.heads
        query = attn.to_q(hidden_states).view(batch, length, heads, -1).transpose(1, 2)
        key = attn.to_k(context).view(batch, context.shape[1], heads, -1).transpose(1, 2)
        value = attn.to_v(context).view(batch, context.shape[1], heads, -1).transpose(1, 2)
        controller = self.controller
        if self.is_cross and controller.wants_cross_probabilities():
            probs = (query @ key.transpose(-1, -2) * attn.scale).softmax(dim=-1)
            out = controller.cross(probs, length) @ value
        else:
            if not self.is_cross and controller.injects_self(length):
                query, key = controller.inject_source(query), controller.inject_source(key)
            out = F.scaled_dot_product_attention(query, key, value, scale=attn.scale)
        out = out.transpose(1, 2).reshape(batch, length, -1)
        return attn.to_out[1](attn.to_out[0](out))


def control_attention(unet: torch.nn.Module, controller: AttentionController) -> dict:
    """Install controlled processors on every attention layer; returns the old processors.

    ``unet.set_attn_processor(old)`` restores the model (the editor does so when it ends).
    """
    old = dict(unet.attn_processors)
    unet.set_attn_processor(
        {
            name: ControlledAttnProcessor(controller, name.endswith("attn2.processor"))
            for name in old
        }
    )
    return old


def edit_branches(
    token_map: TokenMap,
    steps: int,
    cross_replace: float,
    self_replace: Sequence[float],
    reweight: float,
) -> BranchControl:
    """The branches of one edit: its source, then one target per self-replace fraction.

    Args:
        token_map: how the target prompt's tokens relate to the source's.
        steps: denoising steps of the edit.
        cross_replace: fraction of the steps (from the start) whose cross-attention is
            controlled (PRISM: 0.8).
        self_replace: self-attention injection fractions, one target branch each (PRISM
            sweeps 0.4..0.8).
        reweight: factor on the cross-attention of the words the edit adds (PRISM: 2).
    """
    k, length = len(self_replace), token_map.matrix.shape[0]
    n = k + 1
    if token_map.is_identity:
        # A null edit: its targets read the source's prompt, so they compute what the source
        # computes, controlled or not. Left uncontrolled (every token its own map, nothing
        # injected) they are the source's twins at every step, and only the source runs.
        token_map = replace(token_map, own=torch.ones(length))
        cross_replace, self_replace = 0.0, [0.0] * k

    def stack(source_row: torch.Tensor, target_row: torch.Tensor) -> torch.Tensor:
        return torch.stack([source_row, *[target_row] * k])

    return BranchControl(
        source=torch.zeros(n, dtype=torch.long),
        token_map=stack(torch.eye(length), token_map.matrix),
        own_tokens=stack(torch.ones(length), token_map.own),
        token_weights=stack(torch.ones(length), 1 + (reweight - 1) * token_map.target_edited),
        cross_steps=torch.tensor([0] + [round(cross_replace * steps)] * k),
        self_steps=torch.tensor([0] + [round(f * steps) for f in self_replace]),
        blend_tokens=stack(token_map.source_edited, token_map.target_edited),
    )
