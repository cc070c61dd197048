"""Fit the perf model's coefficients to measured steps by least squares (what `kvcalc verify` calibrates).

The step-time model (coefficients.py, calc/perf/step.py) for one GPU and one step with terms W (weight
bytes), K (KV bytes), G (GEMM FLOPs), A (attention FLOPs), L (layers), R (requests), on a card of bandwidth B
and dense peak F:

    t = max(W / (B e_w), G / (F e_g)) + max(K / (B e_kv), A / (F e_a)) + L o_layer + o_step + R o_request
        + t_comm

In the unknowns x = (1/e_w, 1/e_kv, 1/e_g, 1/e_a, o_layer, o_step, o_request) each branch of each max() is
linear, so the fit is an active-set iteration (the BLIS approach fits these terms to real runs; Vidur,
Agrawal et al. 2024, fits per-operator profiles): give each point the branch of each max() that is larger
under the current coefficients, solve a non-negative least squares over all points with each row using its
branches' features, re-assign, repeat until no point changes branch. Rows are divided by the measured time,
so the fit minimises relative errors (a 10 ms and a 1 s step weigh alike). A coefficient that no point
constrains (no compute-bound point, no KV bytes, one layer count only) keeps its prior value; the result
says which were fitted. So does one the points cannot tell apart from the others (its column within
MIN_SEPARATION of their span) when the least squares runs it to its bound: the weight reads and the per-layer
cost of one dense model are the same in every decode step, and their fit trades one for the other until an
efficiency reaches 1; the bound is then an artefact of the trade, and the prior is the better value.
The expert GEMMs' efficiency relative to dense GEMMs, moe_gemm_eff, is also bounded by 1 (`_least_squares`).

Communication is fitted separately, per collective: t = latency + bytes / bandwidth (`fit_latency_bandwidth`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field

import numpy as np

from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.spec.base import record, replace

#: The unknowns in fit order; efficiencies are fitted as their inverses (each branch is linear in those).
FIT_TERMS = ("weight_bw_eff", "kv_bw_eff", "gemm_eff", "attention_eff", "layer_overhead_s", "step_overhead_s",
             "request_overhead_s")
#: The grouped expert GEMMs' efficiency relative to dense GEMMs, fitted (as 1 / (gemm_eff x moe_gemm_eff))
#: when the points have routed experts.
MOE_TERM = "moe_gemm_eff"
ALL_TERMS = (*FIT_TERMS, MOE_TERM)
_EFFICIENCIES = {"weight_bw_eff", "kv_bw_eff", "gemm_eff", "attention_eff", MOE_TERM}
#: The three rooflines of the model as (memory-side unknown, compute-side unknown): dense weights vs GEMMs,
#: expert weights vs expert GEMMs, KV vs attention.
MAXES = ((0, 2), (0, 7), (1, 3))
#: A term is constrained when it is at least this share of the measured time in at least two points.
MIN_SHARE = 0.03


@record
class StepPoint:
    """One measured step and the perf model's terms for it (bytes, FLOPs, counts; the card's B and F).
    `layers` is what layer_overhead_s multiplies: layer units (kernels / a dense layer's, calc/perf/kernels.py)."""

    label: str
    measured_s: float
    weight_bytes: float
    kv_bytes: float
    gemm_flops: float
    attention_flops: float
    layers: float
    bandwidth_bytes_per_s: float
    gemm_peak_flops: float
    attention_peak_flops: float
    requests: int = 0
    comm_s: float = 0.0
    expert_weight_bytes: float = 0.0
    expert_gemm_flops: float = 0.0
    gemm_shape_flops: float | None = None
    expert_shape_flops: float | None = None
    expert_activation_bytes: float = 0.0

    def sides(self) -> np.ndarray:
        """[3 rooflines, 2 sides]: time per unit of each unknown on the memory and compute side of each R():
        dense W/B and G/F, expert W_e/B and G_e/F, K/B and A/F. `weight_bytes` and `gemm_flops` are totals
        (experts included); the GEMM sides take FLOPs over their row efficiency where given (`*_shape_flops`,
        step.StepCost), else the FLOPs themselves."""
        dense_flops = self.gemm_flops - self.expert_gemm_flops
        dense = dense_flops if self.gemm_shape_flops is None else self.gemm_shape_flops
        expert = self.expert_gemm_flops if self.expert_shape_flops is None else self.expert_shape_flops
        bw, peak = self.bandwidth_bytes_per_s, self.gemm_peak_flops
        return np.array([
            [(self.weight_bytes - self.expert_weight_bytes) / bw, dense / peak],
            [self.expert_weight_bytes / bw, expert / peak],
            [self.kv_bytes / bw, self.attention_flops / self.attention_peak_flops],
        ])

    def streamed(self) -> float:
        """Time per unit of 1/weight_bw_eff outside any roofline: the routed activations' bytes / B."""
        return self.expert_activation_bytes / self.bandwidth_bytes_per_s

    def fixed(self) -> np.ndarray:
        """The unknowns outside any roofline per unit: L, 1, R (o_layer, o_step, o_request)."""
        return np.array([float(self.layers), 1.0, float(self.requests)])


@record
class Residual:
    """One point after the fit: measured, modelled, error = (modelled - measured) / measured."""

    label: str
    measured_s: float
    fitted_s: float
    error_pct: float
    regime: str


@record
class CalibrationFit:
    """Fitted coefficients, which terms the data constrained, and the residual of every point."""

    coefficients: PerfCoefficients
    fitted: tuple[str, ...]
    residuals: tuple[Residual, ...]
    median_abs_error_pct: float
    max_abs_error_pct: float
    iterations: int
    notes: tuple[str, ...] = ()


def _vector(coeffs: PerfCoefficients, gemm_dtype: str) -> np.ndarray:
    gemm = coeffs.gemm_efficiency(gemm_dtype)
    return np.array([
        1.0 / coeffs.weight_bw_eff, 1.0 / coeffs.kv_bw_eff, 1.0 / gemm, 1.0 / coeffs.attention_eff,
        coeffs.layer_overhead_s, coeffs.step_overhead_s, coeffs.request_overhead_s, 1.0 / (gemm * coeffs.moe_gemm_eff),
    ])


def _branches(sides: np.ndarray, x: np.ndarray) -> np.ndarray:
    """[points, 3]: True where the memory side of each roofline binds (sides: [points, 3, 2])."""
    return np.stack([sides[:, j, 0] * x[m] >= sides[:, j, 1] * x[c] for j, (m, c) in enumerate(MAXES)], axis=1)


def step_time(point: StepPoint, coeffs: PerfCoefficients, gemm_dtype: str = "bf16") -> tuple[float, str]:
    """The model's time for `point` under `coeffs` (the formula in the module docstring) and which sides bind
    ("memory", "compute" or "mixed" when the rooflines that have work disagree)."""
    sides, x = point.sides(), _vector(coeffs, gemm_dtype)
    total = float(_rows(sides[None], _branches(sides[None], x), coeffs.overlap_loss)[0] @ x[:8])
    total += float(point.fixed() @ x[4:7]) + point.comm_s + point.streamed() * x[0]
    memory = _branches(sides[None], x)[0]
    busy = sides.sum(axis=1) > 0
    memory, busy = memory[busy], busy[busy]
    regime = "memory" if memory.all() else "compute" if not memory.any() else "mixed"
    return float(total), regime


def nnls(a: np.ndarray, b: np.ndarray, max_iter: int = 200) -> np.ndarray:
    """min ||a x - b|| subject to x >= 0 (Lawson & Hanson 1974, "Solving Least Squares Problems", ch. 23)."""
    n = a.shape[1]
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    for _ in range(max_iter):
        w = a.T @ (b - a @ x)
        candidates = np.where(~passive & (w > 1e-12 * max(1.0, float(np.abs(w).max(initial=0.0)))))[0]
        if candidates.size == 0:
            break
        passive[candidates[np.argmax(w[candidates])]] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if np.all(z[passive] > 0):
                x = z
                break
            blocking = passive & (z <= 0)
            alpha = float(np.min(x[blocking] / (x[blocking] - z[blocking])))
            x = x + alpha * (z - x)
            passive &= x > 1e-15
            x[~passive] = 0.0
    return x


def _rows(sides: np.ndarray, memory: np.ndarray, overlap_loss: float = 0.0) -> np.ndarray:
    """[points, 8]: time per unit of each unknown in the rooflines, the binding side of each R() whole and
    the other side times overlap_loss (the fixed costs' columns left 0: `_design` adds them)."""
    rows = np.zeros((sides.shape[0], len(ALL_TERMS)))
    for j, (m, c) in enumerate(MAXES):
        mem, comp = sides[:, j, 0], sides[:, j, 1]
        rows[:, m] += np.where(memory[:, j], mem, overlap_loss * mem)
        rows[:, c] += np.where(memory[:, j], overlap_loss * comp, comp)
    return rows


def _design(sides: np.ndarray, fixed: np.ndarray, memory: np.ndarray, overlap_loss: float,
            streamed: np.ndarray) -> np.ndarray:
    """Each point's row of the least squares: the rooflines' binding sides, the fixed costs' counts and the
    bytes streamed outside any roofline (the routed activations, at the weight-read rate)."""
    rows = _rows(sides, memory, overlap_loss)
    rows[:, 4:7] = fixed
    rows[:, 0] += streamed
    return rows


#: Lower bounds of the unknowns: an efficiency is at most 1 (no kernel reads faster than the memory's
#: datasheet rate or computes faster than the dense peak), a fixed cost at least 0.
LOWER = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0])
#: Columns of 1/gemm_eff and of 1/(gemm_eff x moe_gemm_eff).
_GEMM, _MOE = 2, 7
#: Terms dropped first when the points cannot tell two terms apart (a fixed cost before an efficiency).
_DROP_ORDER = (5, 6, 4, 7, 3, 1, 2, 0)
#: Smallest singular value / largest of the column-normalised design below which terms are not separable.
MIN_CONDITION = 1e-2
#: Sine of the angle between a term's column and the span of the other fitted terms' columns below which the
#: points do not determine it: 1 / sqrt(10), a variance inflation factor 1 / sin^2 of 10, the usual
#: multicollinearity threshold (Kutner, Nachtsheim, Neter & Li, "Applied Linear Statistical Models", 5th ed.,
#: 2005, section 10.5). A term below it that the fit runs to its bound keeps its prior (module docstring).
MIN_SEPARATION = 10 ** -0.5


def _constrained(rows: np.ndarray, measured: np.ndarray, terms: tuple[str, ...]) -> np.ndarray:
    """Which unknowns the points constrain: asked for, >= MIN_SHARE of the time in at least two points, and
    separable from the others (a term whose column is nearly a multiple of the others', such as the per-layer
    cost of one model whose weight bytes never change, is left at its prior)."""
    shares = rows / measured[:, None]
    ok = ((shares >= MIN_SHARE).sum(axis=0) >= 2) & np.array([name in terms for name in ALL_TERMS])
    for drop in _DROP_ORDER:
        cols = shares[:, ok]
        if cols.shape[1] <= 1:
            break
        cols = cols / np.linalg.norm(cols, axis=0)
        singular = np.linalg.svd(cols, compute_uv=False)
        if singular[-1] >= MIN_CONDITION * singular[0]:
            break
        ok[drop] = False
    return ok


def fit_coefficients(
    points: Sequence[StepPoint],
    prior: PerfCoefficients,
    *,
    terms: tuple[str, ...] = ALL_TERMS,
    gemm_dtype: str = "bf16",
    source: str = "",
    max_iter: int = 30,
) -> CalibrationFit:
    """Least-squares coefficients for `points` (module docstring). Only `terms` are fitted; those and any the
    points do not constrain keep `prior`'s values (moe_gemm_eff is asked for only where a point has experts),
    and so does any the points cannot tell apart from the others when the fit runs it to its bound."""
    if not points:
        raise ValueError("no measured points to fit")
    if not any(p.expert_gemm_flops or p.expert_weight_bytes for p in points):
        terms = tuple(t for t in terms if t != MOE_TERM)
    measured = np.array([p.measured_s for p in points])
    notes: list[str] = []
    while True:
        x, free, rows, iterations = _solve(points, prior, terms, gemm_dtype, max_iter)
        pinned = _pinned(rows / measured[:, None], x, free)
        if not pinned:
            break
        for j, partner in pinned:
            bound = 1.0 / LOWER[j] if ALL_TERMS[j] in _EFFICIENCIES else LOWER[j]
            notes.append(f"kept the prior value of {ALL_TERMS[j]} ({_prior_value(prior, j, gemm_dtype):.4g}): the "
                         f"points cannot tell it apart from {ALL_TERMS[partner]}, and the fit ran it to its bound "
                         f"{bound:g}")
        terms = tuple(t for t in terms if t not in {ALL_TERMS[j] for j, _ in pinned})
    if free[_MOE] and x[_MOE] == x[_GEMM]:
        notes.append("held moe_gemm_eff at its bound 1: the points ask for expert GEMMs faster than dense GEMMs of "
                     "their shape, which no grouped GEMM is")
    coeffs = _coefficients(prior, x, free, gemm_dtype, source)
    return _report(points, coeffs, gemm_dtype, free, iterations, terms, tuple(notes))


def _solve(points: Sequence[StepPoint], prior: PerfCoefficients, terms: tuple[str, ...], gemm_dtype: str,
           max_iter: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The active-set iteration (module docstring): the unknowns, which were fitted, the last design and the
    iterations it took."""
    sides = np.array([p.sides() for p in points])
    fixed = np.array([p.fixed() for p in points])
    streamed = np.array([p.streamed() for p in points])
    measured = np.array([p.measured_s for p in points])
    comm = np.array([p.comm_s for p in points])
    x = _vector(prior, gemm_dtype)
    memory = _branches(sides, x)
    free = np.zeros(len(ALL_TERMS), dtype=bool)
    iterations = 0
    for iteration in range(1, max_iter + 1):
        iterations = iteration
        rows = _design(sides, fixed, memory, prior.overlap_loss, streamed)
        free = _constrained(rows, measured, terms)
        x = _least_squares(rows, measured, comm, x, free)
        new_memory = _branches(sides, x)
        if np.array_equal(new_memory, memory):
            break
        memory = new_memory
    return x, free, rows, iterations


def _bounded(rows: np.ndarray, measured: np.ndarray, comm: np.ndarray, x: np.ndarray, free: np.ndarray
             ) -> np.ndarray:
    """x with its free unknowns at min sum ((rows @ x + comm - measured) / measured)^2 over x >= LOWER."""
    weights = 1.0 / measured
    target = (measured - comm - rows[:, ~free] @ x[~free] - rows[:, free] @ LOWER[free]) * weights
    out = x.copy()
    out[free] = LOWER[free] + nnls(rows[:, free] * weights[:, None], target)
    return out


def _least_squares(rows: np.ndarray, measured: np.ndarray, comm: np.ndarray, x: np.ndarray, free: np.ndarray
                   ) -> np.ndarray:
    """`_bounded`, and where that makes the grouped expert GEMMs faster than dense GEMMs of their shape
    (moe_gemm_eff > 1), again with moe_gemm_eff held at that bound, 1 (x7 = x2: the expert GEMMs' column joins
    the dense one's). A grouped GEMM runs at most at the dense rate (DeepGEMM README, first release: 1297
    grouped vs 1304 dense TFLOP/s; torch's with balanced rows on an H100 matches the dense rate,
    docs/validation-h100-gemm-shapes.jsonl); without the bound one MoE model's points trade the two freely
    (Qwen3-30B-A3B alone: gemm_eff 0.33 with moe_gemm_eff 1.4 to 3.4, docs/validation.md)."""
    out = _bounded(rows, measured, comm, x, free)
    if not free[_MOE] or out[_MOE] >= out[_GEMM]:
        return out
    merged = rows.copy()
    merged[:, _GEMM] += merged[:, _MOE]
    held = free.copy()
    held[_MOE] = False
    start = out.copy()
    start[_MOE] = 0.0  # its column is carried by 1/gemm_eff's in `merged`
    out = _bounded(merged, measured, comm, start, held)
    out[_MOE] = out[_GEMM]
    return out


def _separation(shares: np.ndarray, free: np.ndarray, j: int) -> tuple[float, int]:
    """Sine of the angle between term j's column and the span of the other fitted terms' columns (0: a
    combination of them, 1: independent of them), and the other term whose column is closest to j's."""
    others = [i for i in np.flatnonzero(free) if i != j]
    col = shares[:, j] / np.linalg.norm(shares[:, j])
    if not others:
        return 1.0, j
    span = shares[:, others]
    residual = col - span @ np.linalg.lstsq(span, col, rcond=None)[0]
    cosines = np.abs(col @ (span / np.linalg.norm(span, axis=0)))
    return float(np.linalg.norm(residual)), int(others[int(np.argmax(cosines))])


def _pinned(shares: np.ndarray, x: np.ndarray, free: np.ndarray) -> list[tuple[int, int]]:
    """(term, the term it trades against) for each fitted term at its bound that the points do not separate
    from the others (MIN_SEPARATION)."""
    out = []
    for j in np.flatnonzero(free & (x <= LOWER)):
        separation, partner = _separation(shares, free, int(j))
        if separation < MIN_SEPARATION:
            out.append((int(j), partner))
    return out


def _prior_value(prior: PerfCoefficients, j: int, gemm_dtype: str) -> float:
    name = ALL_TERMS[j]
    return prior.gemm_efficiency(gemm_dtype) if name == "gemm_eff" else float(getattr(prior, name))


def _coefficients(prior: PerfCoefficients, x: np.ndarray, free: np.ndarray, gemm_dtype: str,
                  source: str) -> PerfCoefficients:
    values = {}
    for i, name in enumerate(ALL_TERMS):
        if free[i]:
            values[name] = 1.0 / float(x[i]) if name in _EFFICIENCIES else float(x[i])
    if MOE_TERM in values:  # fitted as 1 / (gemm_eff x moe_gemm_eff): divide out the (fitted or prior) gemm_eff
        values[MOE_TERM] = float(x[2]) / float(x[7])
    gemm = dict(prior.gemm_eff)
    if "gemm_eff" in values:
        gemm[gemm_dtype] = values.pop("gemm_eff")
    sources = dict(prior.sources)
    for name in values:
        sources[name] = source or "fitted"
    if free[2]:
        sources[f"gemm_eff.{gemm_dtype}"] = source or "fitted"
    return replace(prior, gemm_eff=gemm, source=source or prior.source, sources=sources, **values)


def _report(points: Sequence[StepPoint], coeffs: PerfCoefficients, gemm_dtype: str, free: np.ndarray,
            iterations: int, terms: tuple[str, ...], pinned: tuple[str, ...] = ()) -> CalibrationFit:
    residuals = []
    for p in points:
        fitted, regime = step_time(p, coeffs, gemm_dtype)
        residuals.append(Residual(label=p.label, measured_s=p.measured_s, fitted_s=fitted,
                                  error_pct=100.0 * (fitted - p.measured_s) / p.measured_s, regime=regime))
    errors = sorted(abs(r.error_pct) for r in residuals)
    fixed = [name for i, name in enumerate(ALL_TERMS) if not free[i] and name in terms]
    unconstrained = [f"kept the prior value of {', '.join(fixed)}: no measured point constrains it"] if fixed else []
    notes = (*unconstrained, *pinned)
    return CalibrationFit(
        coefficients=coeffs, fitted=tuple(name for i, name in enumerate(ALL_TERMS) if free[i]),
        residuals=tuple(residuals), median_abs_error_pct=float(np.median(errors)),
        max_abs_error_pct=float(errors[-1]), iterations=iterations, notes=notes,
    )


@record
class LatencyBandwidthFit:
    """t = latency_s + bytes / bandwidth_bytes_per_s fitted to (bytes, seconds) points, with residuals."""

    latency_s: float
    bandwidth_bytes_per_s: float
    points: int
    max_abs_error_pct: float
    errors_pct: tuple[float, ...] = field(default_factory=tuple)


def fit_latency_bandwidth(sizes: Sequence[float], seconds: Sequence[float]) -> LatencyBandwidthFit:
    """The alpha-beta (Hockney 1994) model t = alpha + n / beta by non-negative least squares on relative
    errors, over message sizes n (the bytes each GPU moves) and measured times."""
    n = np.asarray(sizes, dtype=float)
    t = np.asarray(seconds, dtype=float)
    if n.size < 2:
        raise ValueError("need at least two message sizes to fit latency and bandwidth")
    a = np.stack([np.ones_like(n), n], axis=1) / t[:, None]
    alpha, inv_beta = nnls(a, np.ones_like(t))
    model = alpha + n * inv_beta
    errors = tuple(float(e) for e in 100.0 * (model - t) / t)
    return LatencyBandwidthFit(
        latency_s=float(alpha), bandwidth_bytes_per_s=float(1.0 / inv_beta) if inv_beta > 0 else float("inf"),
        points=int(n.size), max_abs_error_pct=max(abs(e) for e in errors), errors_pct=errors,
    )
