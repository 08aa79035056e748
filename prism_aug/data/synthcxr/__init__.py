"""SynthCXR: procedural chest radiographs with ground-truth counterfactuals and masks.

patient = sample_patient(seed)                        # anatomy, findings, device routes
rendering = render(patient, ["Pleural Effusion"], patient.kit, size=64)
source, target, change = counterfactual(patient, [...], [...], "remove", "Support Devices")
write_synthcxr("data/synthcxr", n_patients=4000)       # CheXpert-shaped folder + masks
"""

from prism_aug.data.synthcxr.contact_sheet import write_contact_sheet
from prism_aug.data.synthcxr.counterfactual import (
    EDIT_ACTIONS,
    EDIT_ATTRIBUTES,
    counterfactual,
    record_counterfactual,
    record_state,
)
from prism_aug.data.synthcxr.findings import SUPPORTED_FINDINGS
from prism_aug.data.synthcxr.masks import MASK_ATTRIBUTES, load_masks, save_masks
from prism_aug.data.synthcxr.patient import Patient, sample_patient
from prism_aug.data.synthcxr.render import SUPPORT_DEVICES, Rendering, render
from prism_aug.data.synthcxr.study import Study, group_counts, study_labels
from prism_aug.data.synthcxr.writer import write_synthcxr

__all__ = [
    "EDIT_ACTIONS",
    "EDIT_ATTRIBUTES",
    "MASK_ATTRIBUTES",
    "SUPPORTED_FINDINGS",
    "SUPPORT_DEVICES",
    "Patient",
    "Rendering",
    "Study",
    "counterfactual",
    "group_counts",
    "load_masks",
    "record_counterfactual",
    "record_state",
    "render",
    "sample_patient",
    "save_masks",
    "study_labels",
    "write_contact_sheet",
    "write_synthcxr",
]
