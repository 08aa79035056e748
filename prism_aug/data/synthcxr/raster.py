"""Resolution-free raster primitives: pixel grids, soft edges, smooth random fields, strokes.

Geometry lives in normalised image coordinates: x runs left to right and y top to bottom, both
over [-1, 1] whatever the pixel size, so one patient renders the same picture at 64 or 512 px.
Every primitive anti-aliases itself over about one pixel (each layer on its own): there is no
blur after composition, which would leak a layer's change outside its mask.
"""

from __future__ import annotations

import functools

import numpy as np

# Random fields are defined on a lattice of control points spanning [-FIELD_EXTENT, FIELD_EXTENT].
FIELD_EXTENT = 1.2
# Strokes are discs this far apart (in radii, at least STROKE_MIN_STEP_PX): the edge of the
# union of discs then wavers by under step**2 / 8 radii, invisible after anti-aliasing.
STROKE_STEP = 0.6
STROKE_MIN_STEP_PX = 0.5


def pixel_size(size: int) -> float:
    """Width of one pixel in normalised units (the image spans 2 units)."""
    return 2.0 / size


@functools.lru_cache(maxsize=16)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(x, y)``, each ``(size, size)`` float32 in (-1, 1), read-only."""
    c = ((np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0).astype(np.float32)
    x, y = np.meshgrid(c, c)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def smoothstep(d: np.ndarray, width: float) -> np.ndarray:
    """Soft occupancy of a signed distance ``d`` (positive inside): 0 below -w/2, 1 above w/2.

    Compact support (exact zeros outside), so a layer built from it has an exact mask.
    """
    t = d * (1.0 / width)
    t += 0.5
    np.clip(t, 0.0, 1.0, out=t)
    s = 3.0 - 2.0 * t
    s *= t
    s *= t
    return s


def ellipse_sdf(
    u: np.ndarray, v: np.ndarray, cx: float, cy: float, rx: float, ry: float
) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse, positive inside (units of u, v)."""
    du = (u - cx) * (1.0 / rx)
    dv = (v - cy) * (1.0 / ry)
    return (1.0 - np.sqrt(du * du + dv * dv)) * min(rx, ry)


@functools.lru_cache(maxsize=32)
def _field_basis(size: int, k: int) -> np.ndarray:
    """``(size, k)`` float32 Gaussian interpolation weights from k lattice points to pixels."""
    x = grid(size)[0][0].astype(np.float64)
    centres = np.linspace(-FIELD_EXTENT, FIELD_EXTENT, k)
    sigma = centres[1] - centres[0]
    w = np.exp(-0.5 * ((x[:, None] - centres[None, :]) / sigma) ** 2)
    w /= np.sqrt((w * w).sum(axis=1, keepdims=True))  # unit variance for unit-variance lattices
    w = w.astype(np.float32)
    w.setflags(write=False)
    return w


def smooth_field(lattice: np.ndarray, size: int) -> np.ndarray:
    """Smooth random field ``(size, size)`` float32 (about unit variance) from a ``(k, k)`` lattice.

    The lattice is fixed in normalised coordinates, so the field is the same continuous
    function sampled at any size: cheap (two small matmuls) and resolution-free.
    """
    b = _field_basis(size, lattice.shape[0])
    return b @ lattice.astype(np.float32) @ b.T


def to_pixels(points: np.ndarray, size: int) -> np.ndarray:
    """Map normalised ``(N, 2)`` (x, y) points to pixel coordinates (column, row)."""
    return (np.asarray(points, dtype=np.float64) + 1.0) * (size / 2.0) - 0.5


def densify(routes: list[np.ndarray], steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample Catmull-Rom curves through each route's ``(M_i, 2)`` control points (M_i >= 2).

    Points on route i are about ``steps[i]`` apart at most (give pixel coordinates so the
    density follows the resolution); a straight route stays straight. All routes are sampled
    in one vectorised pass.

    Returns:
        ``(N, 2)`` points and ``(N,)`` int index of the route each point belongs to.
    """
    ext, firsts, ends = [], [], []
    offset = 0
    for p in routes:
        ext.append(np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]]))
        firsts.append(np.arange(offset, offset + len(p) - 1))  # ghost-point index of P0
        ends.append(p[-1])
        offset += len(p) + 2
    e = np.concatenate(ext)
    first = np.concatenate(firsts)
    route = np.repeat(np.arange(len(routes)), [len(p) - 1 for p in routes])
    seglen = np.linalg.norm(e[first + 2] - e[first + 1], axis=1)
    n = np.maximum(np.ceil(seglen / np.asarray(steps)[route]).astype(np.int64), 1)
    seg = np.repeat(first, n)
    t = ((np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / np.repeat(n, n))[:, None]
    p0, p1, p2, p3 = e[seg], e[seg + 1], e[seg + 2], e[seg + 3]
    t2 = t * t
    out = 0.5 * (
        2 * p1
        + (p2 - p0) * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
        + (3 * p1 - p0 - 3 * p2 + p3) * (t2 * t)
    )
    points = np.concatenate([out, np.asarray(ends)])
    return points, np.concatenate([np.repeat(route, n), np.arange(len(routes))])


def splat(
    layers: np.ndarray,
    points: np.ndarray,
    half_width: np.ndarray,
    value: np.ndarray,
    layer: np.ndarray,
) -> None:
    """Draw anti-aliased discs (strokes, where points are dense) into ``layers`` in place.

    Args:
        layers: ``(L, S, S)`` float32, C-contiguous; composited with max, so overlaps do not add.
        points: ``(N, 2)`` pixel coordinates (column, row) of the disc centres.
        half_width: ``(N,)`` disc radii in pixels; coverage falls from 1 to 0 over one pixel.
        value: ``(N,)`` attenuation added where fully covered.
        layer: ``(N,)`` int index of the layer each disc goes to.
    """
    size = layers.shape[-1]
    reach = np.ceil(half_width + 1.0).astype(np.int64)
    flat = layers.reshape(-1)
    for k in np.unique(reach):  # one pass per stencil size
        sel = reach == k
        off = np.arange(-k, k + 1, dtype=np.int64)
        px, py = points[sel, 0], points[sel, 1]
        cols = np.rint(px).astype(np.int64)[:, None, None] + off[None, None, :]  # (n, 1, K)
        rows = np.rint(py).astype(np.int64)[:, None, None] + off[None, :, None]  # (n, K, 1)
        dx = (cols - px[:, None, None]).astype(np.float32)
        dy = (rows - py[:, None, None]).astype(np.float32)
        r = (half_width[sel, None, None] + 0.5).astype(np.float32)
        w = np.clip(r - np.sqrt(dx * dx + dy * dy), 0.0, 1.0)
        ok = (w > 0) & (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
        idx = (layer[sel, None, None] * size + rows) * size + cols  # (n, K, K)
        w *= value[sel, None, None].astype(np.float32)
        np.maximum.at(flat, idx[ok], w[ok])
