"""Counterfactual editing: inversion, Prompt-to-Prompt attention control, masks, verifier.

``Editor`` turns a batch of radiographs and their source and target prompts into candidates;
``Verifier`` keeps the candidate an attribute classifier accepts, or rejects the edit.
"""

from prism_aug.editing.editor import Candidate, EditedBatch, Editor, EditorSettings
from prism_aug.editing.inversion import METHODS as INVERSIONS
from prism_aug.editing.inversion import NullTextSettings
from prism_aug.editing.verifier import Verdict, Verifier

__all__ = [
    "INVERSIONS",
    "Candidate",
    "EditedBatch",
    "Editor",
    "EditorSettings",
    "NullTextSettings",
    "Verdict",
    "Verifier",
]
