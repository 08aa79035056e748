"""The normal chest of a SynthCXR patient as an attenuation map, plus the fields findings need.

Attenuation is additive (bright = attenuating): soft tissue through the body's thickness,
bones on top, minus the air in the lungs, which is why the lungs look dark and the
mediastinum, heart, bones and soft tissue bright. Findings and devices are further additive
layers (see findings.py, devices.py) computed from these fields, never from each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prism_aug.data.synthcxr.patient import Anatomy, Patient
from prism_aug.data.synthcxr.raster import ellipse_sdf, grid, pixel_size, smooth_field, smoothstep

SIDES: tuple[int, int] = (-1, 1)
HEART_DENSITY = 0.06  # the heart is a little denser than the mediastinum's fat
MEDIASTINUM_DENSITY = 0.03
SPINE_DENSITY = 0.1
TRACHEA_AIR = 0.2
GASTRIC_AIR = 0.18
LUNG_EDGE = 0.02  # pleural edges are soft over this width (normalised units), plus a pixel
HEART_TILT = 0.55  # radians: the long axis runs down to the apex on the patient's left


@dataclass(frozen=True)
class AnatomyFields:
    """Per-pixel fields of one patient at one size; arrays are ``(S, S)`` float32.

    Per-side tuples are (image left, image right).
    """

    base: np.ndarray  # attenuation of the normal chest, about 0..1.3
    u: np.ndarray  # patient coordinates of each pixel
    v: np.ndarray
    aa: float  # one pixel, normalised units: the anti-aliasing width
    lung: tuple[np.ndarray, np.ndarray]  # lung occupancy in [0, 1]
    lung_ellipse: tuple[
        np.ndarray, np.ndarray
    ]  # signed distance to the lung outline (no diaphragm)
    air: tuple[np.ndarray, np.ndarray]  # air a full lung would remove (before occlusion), >= 0
    markings: tuple[np.ndarray, np.ndarray]  # vessel markings of an unoccluded lung, >= 0
    heart: np.ndarray  # heart occupancy in [0, 1]
    mediastinum: np.ndarray  # upper mediastinum and aortic knob occupancy in [0, 1]


def patient_coordinates(anatomy: Anatomy, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Patient coordinates ``(u, v)`` of each pixel: the inverse of the patient's position."""
    x, y = grid(size)
    k = 1.0 / anatomy.scale
    c, s = float(np.cos(anatomy.rotation)) * k, float(np.sin(anatomy.rotation)) * k
    dx, dy = x - anatomy.shift[0], y - anatomy.shift[1]
    return c * dx + s * dy, c * dy - s * dx


def to_image(anatomy: Anatomy, points: np.ndarray) -> np.ndarray:
    """Map ``(N, 2)`` patient coordinates to normalised image coordinates."""
    p = np.asarray(points, dtype=np.float64)
    c, s = np.cos(anatomy.rotation), np.sin(anatomy.rotation)
    rot = np.array([[c, -s], [s, c]]) * anatomy.scale
    return p @ rot.T + np.asarray(anatomy.shift)


def heart_occupancy(
    a: Anatomy, u: np.ndarray, v: np.ndarray, aa: float, factor: float = 1.0
) -> np.ndarray:
    """Heart silhouette in [0, 1]: a tilted ventricular ellipse plus the right atrium's bulge.

    ``factor`` > 1 enlarges it (cardiomegaly): wider, mostly to the patient's left, and a
    little taller and lower.
    """
    w = a.heart_width * factor
    h = a.heart_height * (1.0 + 0.3 * (factor - 1.0))
    cx = a.heart_x + 0.3 * (factor - 1.0) * a.heart_width
    cy = a.heart_y + 0.25 * (factor - 1.0) * a.heart_height
    c, s = float(np.cos(HEART_TILT)), float(np.sin(HEART_TILT))
    du, dv = u - (cx + 0.1 * w), v - (cy + 0.12 * h)
    ventricle = ellipse_sdf(c * du + s * dv, c * dv - s * du, 0.0, 0.0, 0.6 * w, 0.7 * h)
    atrium = ellipse_sdf(u, v, cx - 0.24 * w, cy + 0.05 * h, 0.16 * w, 0.55 * h)
    return smoothstep(np.maximum(ventricle, atrium), aa + 0.01)


def costophrenic_angle(a: Anatomy, side: int) -> float:
    """v of a lung's costophrenic angle, where its lateral outline meets the diaphragm."""
    i = (side + 1) // 2
    t = np.linspace(0.0, 1.0, 201)  # lateral offset from the lung centre, in lung half-widths
    ellipse = a.lung_y + a.lung_ry[i] * np.sqrt(1.0 - t * t)
    diaphragm = a.diaphragm[i] - a.dome[i] * (1.0 - t * t)
    return float(np.min(np.maximum(ellipse, diaphragm)))


def lung_outline(a: Anatomy, u: np.ndarray, v: np.ndarray, side: int, shrink: float = 0.0):
    """Signed distance to a lung's outline (positive inside, diaphragm ignored).

    ``shrink`` pulls the apex and the lateral wall in by that much while the medial and basal
    edges stay: the outline of a lung collapsing away from the chest wall (pneumothorax).
    """
    i = (side + 1) // 2
    rx, ry = a.lung_rx[i] - shrink / 2, a.lung_ry[i] - shrink / 2
    cx, cy = side * (a.lung_x[i] - shrink / 2), a.lung_y + shrink / 2
    top = np.clip((cy - v) * (1.0 / ry), 0.0, 1.0)
    rx_v = rx * (1.0 - a.apex_taper * top * top)  # narrower towards the apex
    du = (u - cx) / rx_v
    dv = (v - cy) * (1.0 / ry)
    return (1.0 - np.sqrt(du * du + dv * dv)) * min(rx, ry)


def _lung(a: Anatomy, u: np.ndarray, v: np.ndarray, side: int, aa: float):
    """Occupancy, outline distance and air depth of one lung."""
    i = (side + 1) // 2
    cx, rx = side * a.lung_x[i], a.lung_rx[i]
    ellipse = lung_outline(a, u, v, side)
    lateral = np.clip((u - cx) * (1.0 / rx), -1.0, 1.0)
    diaphragm = a.diaphragm[i] - a.dome[i] * (1.0 - lateral * lateral) - v
    occ = smoothstep(np.minimum(ellipse, diaphragm), aa + LUNG_EDGE)
    depth = 0.6 + 0.4 * np.clip(ellipse * (2.5 / rx), 0.0, 1.0)  # thicker centrally
    return occ, ellipse, (a.air * occ) * depth


def _bands(phase: np.ndarray, half: float) -> np.ndarray:
    """Periodic soft bands in [0, 1], one per unit of ``phase``, ``2 * half`` of a period wide."""
    d = np.abs(phase - np.rint(phase))  # distance to the nearest band centre, in periods
    return np.clip((half - d) * 8.0, 0.0, 1.0)


def _bones(a: Anatomy, u: np.ndarray, v: np.ndarray, ua: np.ndarray, aa: float) -> np.ndarray:
    """Ribs (posterior and anterior, one periodic pattern each in a warped coordinate),
    clavicles, humeral heads and spine."""
    # Posterior ribs arch up from the spine and droop laterally; spacing widens downwards.
    t = np.clip((v + a.rib_tilt * ua - a.rib_curve * ua * ua + 0.9) * (1.0 / 1.5), 0.0, 1.0)
    ribs = _bands(t * (1.3 - 0.3 * t) * a.rib_count, 0.22)
    # Anterior ribs slope down towards the sternum.
    ribs += 0.35 * _bands((v + 0.55 * ua) * (a.rib_count / 1.5), 0.15)
    cage = ellipse_sdf(ua, v, 0.0, a.lung_y + 0.05, max(a.lung_x) + max(a.lung_rx) + 0.06, 0.85)
    ribs *= smoothstep(cage, aa + 0.05) * smoothstep(ua - 0.08, aa + 0.03)
    # Clavicles: gently S-shaped bars from the sternal notch out to the shoulders.
    s = ua - 0.07
    vc = a.clavicle_y + a.clavicle_tilt * s - 0.3 * s * (0.58 - s)
    clav = smoothstep(0.025 - np.abs(v - vc), aa) * smoothstep(np.minimum(s, 0.62 - ua), aa + 0.03)
    humerus = smoothstep(ellipse_sdf(ua, v, 1.02, a.clavicle_y - 0.05, 0.17, 0.19), aa + 0.03)
    vertebrae = 0.75 + 0.25 * np.cos(v * (2 * np.pi / 0.14))
    spine = smoothstep(0.065 - np.abs(u), aa + 0.02) * vertebrae
    return a.bone * (ribs + 1.2 * clav + humerus) + SPINE_DENSITY * spine


def anatomy_fields(patient: Patient, size: int) -> AnatomyFields:
    """Render the normal chest's attenuation and the fields findings are built from."""
    a = patient.anatomy
    aa = pixel_size(size) / a.scale
    u, v = patient_coordinates(a, size)
    ua = np.abs(u)

    # Body: soft tissue through the trunk's thickness, narrower at the neck.
    shoulders = v + 0.75
    half = a.body_half_width * (1.0 + 0.15 * np.exp(shoulders * shoulders * -20.0))
    r = u / half
    body = a.soft_tissue * np.sqrt(np.clip(1.0 - r * r, 0.0, 1.0))

    heart = heart_occupancy(a, u, v, aa)
    knob = ellipse_sdf(u, v, 0.1, a.carina_y - 0.04, a.aortic_knob, a.aortic_knob)
    upper = np.minimum(a.mediastinum_width - np.abs(u + 0.01), a.heart_y - v)
    mediastinum = smoothstep(np.maximum(upper, knob), aa + 0.02)
    occluded = 1.0 - np.maximum(heart, mediastinum)

    rng = np.random.default_rng([patient.seed, 1])
    f1 = smooth_field(rng.standard_normal((14, 14)), size)
    f2 = smooth_field(rng.standard_normal((26, 26)), size)
    vessels = np.exp(-(f1 * f1) * 6.0) + 0.6 * np.exp(-(f2 * f2) * 8.0)
    dh = np.sqrt((ua - 0.2) ** 2 + (v + 0.02) ** 2)
    vessels = a.markings * (vessels * (0.3 + np.exp(dh * -3.0)) + 0.5 * smoothstep(0.08 - dh, 0.1))

    lungs, ellipses, airs, markings = [], [], [], []
    for side in SIDES:
        occ, ellipse, air = _lung(a, u, v, side, aa)
        lungs.append(occ)
        ellipses.append(ellipse)
        airs.append(air)
        markings.append(vessels * occ)

    trachea = smoothstep(0.032 - np.abs(u - a.trachea_x), aa + 0.01)
    trachea *= smoothstep(a.carina_y - v, 0.06)
    bubble = smoothstep(ellipse_sdf(u, v, a.lung_x[1], a.diaphragm[1] + 0.1, 0.09, 0.05), aa + 0.02)
    base = body + _bones(a, u, v, ua, aa)
    base += HEART_DENSITY * heart + MEDIASTINUM_DENSITY * mediastinum
    base -= TRACHEA_AIR * trachea + GASTRIC_AIR * bubble
    base += ((markings[0] - airs[0]) + (markings[1] - airs[1])) * occluded
    if a.breast > 0:
        breasts = smoothstep(ellipse_sdf(ua, v, 0.5, 0.52, 0.36, 0.25), 0.2)
        base += a.breast * breasts
    return AnatomyFields(
        base=base.astype(np.float32, copy=False),
        u=u,
        v=v,
        aa=aa,
        lung=(lungs[0], lungs[1]),
        lung_ellipse=(ellipses[0], ellipses[1]),
        air=(airs[0], airs[1]),
        markings=(markings[0], markings[1]),
        heart=heart,
        mediastinum=mediastinum,
    )
