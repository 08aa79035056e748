"""The LightningModule of ``prism-aug augment``: one chunk of jobs in, webdataset samples out.

``predict_step`` edits every readable job of its chunk in one ``Editor.edit`` call, lets the
verifier choose each job's candidate (or reject the edit), and returns one sample per job
not yet written: ``{key}.png`` (absent when the job failed) and ``{key}.json`` with
everything needed to trust or reproduce it. A job whose image cannot be read, or whose edit
does not apply or raises, becomes a "failed" sample with its reason; the run goes on. An
out-of-memory or accelerator error is not the job's fault and may leave the device unusable:
it stops the run, so that the same command resumes and redoes the chunk.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from prism_aug.augment.data import Chunk, Job
from prism_aug.data.prompts import EditSpec, edit_prompts
from prism_aug.data.records import square_image
from prism_aug.editing.editor import Editor, EditorSettings
from prism_aug.editing.verifier import UNVERIFIED, Verdict, Verifier, judged_attribute

FAILED = "failed"  # the job's own input or edit failed; ACCEPTED etc. are the verifier's
# Failures of the machine, not of a job: a failed sample is never redone, these must be.
DEVICE_ERRORS: tuple[type[Exception], ...] = (torch.OutOfMemoryError, torch.AcceleratorError)


class AugmentModule(L.LightningModule):
    """Edits chunks of jobs with a fine-tuned SD model and judges them with an oracle.

    Args:
        model: the diffusers folder, hub id or preset name of the fine-tuned model.
        oracle: the verifier's attribute classifier (an oracle folder); None writes the
            middle candidate of each edit unverified.
        settings: how edits are made (PRISM's defaults with the direct inversion).
        threshold: the verifier's probability threshold.
        seed: the torch seed of chunk i is ``seed + i``.
    """

    def __init__(
        self,
        model: str = "outputs/models/synthcxr_tiny",
        oracle: str | None = "outputs/models/oracle",
        settings: EditorSettings | None = None,
        threshold: float = 0.5,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.model_id, self.oracle_path = str(model), oracle
        self.settings = settings or EditorSettings()
        self.threshold, self.seed = threshold, seed
        self.editor: Editor | None = None
        self.verifier: Verifier | None = None

    def configure_model(self) -> None:
        """Load the model and the oracle as submodules, so the strategy moves them."""
        if self.editor is not None:
            return
        from prism_aug.diffusion.loading import load_components

        components = load_components(self.model_id)
        self.sd = nn.ModuleDict(
            {"unet": components.unet, "vae": components.vae, "text": components.text_encoder}
        ).eval()
        self.editor = Editor(components, self.settings)
        if self.oracle_path is not None:
            from prism_aug.evaluation.oracle import load_oracle

            oracle = load_oracle(self.oracle_path)
            self.judge = oracle.network
            self.verifier = Verifier(oracle, self.threshold)

    @property
    def image_size(self) -> int:
        return int(self.editor.components.vae.config.sample_size)

    def predict_step(self, chunk: Chunk) -> list[dict[str, Any]]:
        """The samples of the chunk's jobs that are not written yet."""
        jobs = [job for job in chunk.jobs if not job.error]
        seed = self.seed + chunk.index
        if jobs:
            try:
                torch.manual_seed(seed)
                images, candidates, verdicts = self._edit(jobs)
            except DEVICE_ERRORS:
                raise
            except Exception as err:  # a failed edit is recorded, the run goes on
                for job in jobs:
                    job.error = f"edit failed: {type(err).__name__}: {err}"
                jobs = []
        edited = {job.key: i for i, job in enumerate(jobs)}  # row of each edited job
        samples = []
        for job in chunk.jobs:
            if job.done:
                continue
            if job.error:
                samples.append(self._sample(job, seed, FAILED, job.error))
                continue
            i = edited[job.key]
            samples.append(self._edited_sample(job, seed, images[i], candidates[i], verdicts[i]))
        return samples

    def _edit(self, jobs: list[Job]) -> tuple[np.ndarray, np.ndarray, list[Verdict | None]]:
        size = self.image_size
        images = np.stack([square_image(job.image, size) for job in jobs])
        specs = [EditSpec.parse(job.edit) for job in jobs]
        prompts = [edit_prompts(job.labels, spec) for job, spec in zip(jobs, specs, strict=True)]
        edited = self.editor.edit(images, [p[0] for p in prompts], [p[1] for p in prompts])
        if self.verifier is None:
            return images, edited.candidates, [None] * len(jobs)
        return images, edited.candidates, self.verifier.judge(images, edited.candidates, specs)

    def _edited_sample(
        self,
        job: Job,
        seed: int,
        source: np.ndarray,
        candidates: np.ndarray,
        verdict: Verdict | None,
    ) -> dict[str, Any]:
        spec = EditSpec.parse(job.edit)
        if verdict is None:
            chosen = self.settings.fallback
            status, reason, flipped, scores = UNVERIFIED, "no verifier", None, None
        else:
            attribute = judged_attribute(spec, self.verifier.classifier.attributes)
            wanted = _wanted(verdict, spec, attribute, self.threshold)
            chosen = verdict.chosen if verdict.accepted else _closest(verdict, attribute, wanted)
            status = verdict.status
            reason = verdict.reason
            flipped = (verdict.candidate_scores[chosen][attribute] >= self.threshold) == wanted
            scores = {
                "threshold": self.threshold,
                "passed": list(verdict.passed),
                "source": verdict.source_scores,
                "candidates": list(verdict.candidate_scores),
            }
        sample = self._sample(job, seed, status, reason)
        sample["json"].update(
            candidate=chosen,
            self_replace=self.settings.candidates[chosen].self_replace,
            mask_threshold=self.settings.candidates[chosen].mask_threshold,
            oracle_sees_edit=flipped,
            verifier=scores,
        )
        sample["png"] = candidates[chosen]
        sample["source.png"] = source
        return sample

    def _sample(self, job: Job, seed: int, status: str, reason: str) -> dict[str, Any]:
        spec = EditSpec.parse(job.edit)
        applies, _ = spec.applies_to(job.labels)
        source_prompt, target_prompt = edit_prompts(job.labels, spec) if applies else ("", "")
        meta = {
            "key": job.key,
            "source_key": job.source_key,
            "source_path": job.path,
            "edit": job.edit,
            "status": status,
            "reason": reason,
            "labels_before": job.labels,
            "labels_after": spec.edited_labels(job.labels) if applies else None,
            "group_before": job.group_before,
            "group_after": job.group_after,
            "source_prompt": source_prompt,
            "target_prompt": target_prompt,
            "seed": seed,
            "settings": asdict(self.settings),
            "precision": str(self._trainer.precision) if self._trainer is not None else None,
            "model": self.model_id,
        }
        return {"__key__": job.key, "json": meta}


def _wanted(verdict: Verdict, spec: EditSpec, attribute: str, threshold: float) -> bool:
    """Whether the edit should leave the attribute present: "add", or "keep" of a source
    the oracle sees it in."""
    if spec.action == "keep":
        return verdict.source_scores[attribute] >= threshold
    return spec.action == "add"


def _closest(verdict: Verdict, attribute: str, wanted: bool) -> int:
    """A rejected edit's most telling candidate: the one the oracle saw closest to the
    wanted state of the attribute."""
    p = np.array([scores[attribute] for scores in verdict.candidate_scores])
    return int(p.argmax() if wanted else p.argmin())
