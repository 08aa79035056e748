"""Support devices as additive attenuation layers: thin, bright, varied, one per device type.

Routes come from the patient (patient.DeviceRoutes) in patient coordinates; each is mapped onto
the image and drawn as an anti-aliased stroke, so a device is 1-2 px wide at 64 px and keeps
its physical width at 512 px. A layer is zero off the device, so its support is its mask.
"""

from __future__ import annotations

import numpy as np

from prism_aug.data.synthcxr.anatomy import to_image
from prism_aug.data.synthcxr.patient import Patient
from prism_aug.data.synthcxr.raster import (
    STROKE_MIN_STEP_PX,
    STROKE_STEP,
    densify,
    grid,
    pixel_size,
    smoothstep,
    splat,
    to_pixels,
)
from prism_aug.data.vocabulary import DEVICES

# (full width in normalised units, attenuation): metal is brighter than plastic.
PACEMAKER_GENERATOR = 1.4
PACEMAKER_LEAD = (0.024, 0.9)
CHEST_TUBE = (0.055, 0.7)
CENTRAL_LINE = (0.03, 0.75)
ENDOTRACHEAL_TUBE = (0.055, 0.45)
TUBE_STRIPE = (0.016, 0.9)  # radiopaque stripe along chest and endotracheal tubes
ECG_WIRE = (0.022, 0.5)
ECG_ELECTRODE_RADIUS = 0.05
ECG_RING = (0.018, 0.6)
ECG_SNAP = (0.04, 1.1)  # the metal snap in the electrode's centre (diameter)


def _generator(layer: np.ndarray, patient: Patient) -> None:
    """The pacemaker's can: a bright rounded box, drawn inside its bounding window only."""
    size, a = layer.shape[0], patient.anatomy
    cx, cy, hw, hh, angle = patient.devices.pacemaker_box
    ((x0, y0),) = to_image(a, np.array([[cx, cy]]))
    hw, hh, angle = hw * a.scale, hh * a.scale, angle + a.rotation
    reach = np.hypot(hw, hh) + 2 * pixel_size(size)
    corners = to_pixels(np.array([[x0 - reach, y0 - reach], [x0 + reach, y0 + reach]]), size)
    (c0, r0), (c1, r1) = np.clip(np.rint(corners).astype(int), 0, size)
    x, y = grid(size)
    dx, dy = x[r0:r1, c0:c1] - float(x0), y[r0:r1, c0:c1] - float(y0)
    c, s = float(np.cos(angle)), float(np.sin(angle))
    radius = 0.45 * min(hw, hh)
    qx = np.abs(c * dx + s * dy) - (hw - radius)
    qy = np.abs(c * dy - s * dx) - (hh - radius)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)
    box = PACEMAKER_GENERATOR * smoothstep(radius - outside, pixel_size(size))
    np.maximum(layer[r0:r1, c0:c1], box, out=layer[r0:r1, c0:c1])


_RING = np.stack([np.cos(np.linspace(0, 2 * np.pi, 25)), np.sin(np.linspace(0, 2 * np.pi, 25))], 1)


def _routes(p: Patient) -> list[tuple[str, np.ndarray, tuple[float, float]]]:
    """Every stroke of every device type: (device, control points, (width, attenuation))."""
    d = p.devices
    electrodes = [ECG_ELECTRODE_RADIUS * _RING + e for e in d.ecg_electrodes]
    strokes = [("Pacemaker", lead, PACEMAKER_LEAD) for lead in d.pacemaker_leads]
    strokes += [("Chest Tube", d.chest_tube, CHEST_TUBE), ("Chest Tube", d.chest_tube, TUBE_STRIPE)]
    strokes += [("Central Line", d.central_line, CENTRAL_LINE)]
    strokes += [
        ("Endotracheal Tube", d.endotracheal_tube, ENDOTRACHEAL_TUBE),
        ("Endotracheal Tube", d.endotracheal_tube, TUBE_STRIPE),
    ]
    strokes += [("ECG Leads", wire, ECG_WIRE) for wire in d.ecg_wires]
    strokes += [("ECG Leads", ring, ECG_RING) for ring in electrodes]
    return [(name, np.asarray(route, dtype=np.float64), style) for name, route, style in strokes]


def device_layers(patient: Patient, size: int) -> dict[str, np.ndarray]:
    """Attenuation each device type adds, ``(size, size)`` float32, zero off the device."""
    a = patient.anatomy
    routes = _routes(patient)
    control = to_pixels(to_image(a, np.concatenate([r for _, r, _ in routes])), size)
    bounds = np.cumsum([len(r) for _, r, _ in routes])[:-1]
    px_per_unit = a.scale * size / 4.0  # a full width w is a radius of w * this, in pixels
    width = np.array([style[0] for _, _, style in routes]) * px_per_unit
    steps = np.maximum(width * STROKE_STEP, STROKE_MIN_STEP_PX)
    points, route = densify(np.split(control, bounds), steps)
    value = np.array([style[1] for _, _, style in routes])
    index = np.array([DEVICES.index(name) for name, _, _ in routes])
    snaps = to_pixels(to_image(a, np.asarray(patient.devices.ecg_electrodes)), size)
    layers = np.zeros((len(DEVICES), size, size), dtype=np.float32)
    splat(
        layers,
        np.concatenate([points, snaps]),
        np.concatenate([width[route], np.full(len(snaps), ECG_SNAP[0] * px_per_unit)]),
        np.concatenate([value[route], np.full(len(snaps), ECG_SNAP[1])]),
        np.concatenate([index[route], np.full(len(snaps), DEVICES.index("ECG Leads"))]),
    )
    _generator(layers[DEVICES.index("Pacemaker")], patient)
    return dict(zip(DEVICES, layers, strict=True))
