"""The calibration `kvcalc verify` fits to one run: the prior a single model's steps start from, the fit
itself (calc/perf/calibrate.py), and the coefficients a calibration file carries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kvcalc.calc.perf.calibrate import CalibrationFit, StepPoint, fit_coefficients
from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.verify.steps import CARD_TERMS, HARNESS_TERMS
from kvcalc.spec.base import record, replace
from kvcalc.spec.gpu import GpuSpec


@record
class RunFit:
    """The fit to one run's steps and the card terms taken from its ceilings instead (a MoE model's
    gemm_eff), which a calibration file carries beside the fitted ones."""

    fit: CalibrationFit
    measured: tuple[str, ...]

    @property
    def written(self) -> list[str]:
        """The card terms a calibration file carries: fitted, or measured in their place."""
        return [t for t in CARD_TERMS if t in self.fit.fitted or t in self.measured]


def single_model_prior(coeffs: PerfCoefficients, ceilings: dict[str, Any], peak_bf16: float, experts: bool
                       ) -> tuple[PerfCoefficients, tuple[str, ...], tuple[str, ...]]:
    """What one model's steps cannot separate is taken from the card's own measurements (prior, terms to fit,
    notes). Where the per-kernel cost of an empty kernel was measured, 9 of it is the prior per-layer cost; it
    is still fitted, because real kernels cost more than empty ones (2.8 us against 1.2 us on an H100,
    docs/validation.md), and where the steps cannot tell it from the weight reads (a dense model reads the same
    weights every decode step) the fit keeps the weight rate's prior instead. A MoE model's dense GEMMs
    are a small share beside its expert GEMMs, and the fit trades one for the other (Qwen3-30B-A3B alone:
    gemm_eff 0.41 with moe_gemm_eff at its bound 1, docs/validation.md): gemm_eff is the measured 8192^3 bf16
    GEMM over its shape factor (calc/perf/shape.py), and moe_gemm_eff is fitted against it."""
    from kvcalc.calc.perf.shape import measured_gemm_shape

    terms: tuple[str, ...] = HARNESS_TERMS
    notes: list[str] = []
    if "kernel" in ceilings:
        from kvcalc.calc.perf.kernels import DENSE_LAYER_KERNELS

        coeffs = replace(coeffs, layer_overhead_s=ceilings["kernel"]["per_kernel_s"] * DENSE_LAYER_KERNELS)
    large = [g for g in ceilings.get("gemm", []) if g.get("shape") == "large" and g.get("dtype") == "bf16"
             and (g.get("flops_per_s") or 0) > 0]
    if experts and large and peak_bf16 > 0:
        shape = measured_gemm_shape(coeffs.gemm_rows_half, coeffs.gemm_depth_half)
        gemm = min(1.0, large[0]["flops_per_s"] / peak_bf16 / shape)
        coeffs = replace(coeffs, gemm_eff={**coeffs.gemm_eff, "bf16": gemm})
        terms = tuple(t for t in terms if t != "gemm_eff")
        notes.append(f"gemm_eff {gemm:.3f} from this card's 8192^3 bf16 GEMM (not fitted: one MoE model's steps "
                     "cannot tell its dense GEMMs from its expert GEMMs)")
    return coeffs, terms, tuple(notes)


def calibration_source(card: Mapping[str, Any]) -> str:
    """Where a fit came from, for its notes and the files written from it."""
    return f"kvcalc verify on {card.get('name', '?')}, driver {card.get('driver', '?')}, {card.get('date', '?')}"


def fit_run(points: Sequence[StepPoint], coeffs: PerfCoefficients, ceilings: dict[str, Any], gpu: GpuSpec,
            card: Mapping[str, Any]) -> RunFit:
    """Least squares of the harness terms over one run's steps, from `single_model_prior`."""
    experts = any(p.expert_gemm_flops for p in points)
    prior, terms, notes = single_model_prior(coeffs, ceilings, gpu.flops("bf16"), experts)
    fit = fit_coefficients(points, prior, terms=terms, source=calibration_source(card))
    measured = tuple(t for t in HARNESS_TERMS if t not in terms and t in CARD_TERMS)  # from the ceilings
    return RunFit(fit=replace(fit, notes=(*notes, *fit.notes)), measured=measured)


def fp8_ratio(ceilings: dict[str, Any], gpu: GpuSpec) -> float | None:
    """(measured FP8 / FP8 peak) / (measured bf16 / bf16 peak) at the large GEMM shape; None unless both ran."""
    shares = {g["dtype"]: g["flops_per_s"] / gpu.flops(g["dtype"]) for g in ceilings.get("gemm", [])
              if g.get("shape") == "large" and g.get("dtype") in ("bf16", "fp8")}
    if not shares.get("bf16") or "fp8" not in shares:
        return None
    return shares["fp8"] / shares["bf16"]


def calibration_values(coefficients: Mapping[str, Any], wanted: Sequence[str], dtype: str,
                       fp8_share: float | None) -> dict[str, Any]:
    """The coefficients a calibration file carries, to 4 significant figures: each `wanted` term, gemm_eff for
    the measured dtype only, plus FP8 = that x `fp8_share` (fp8_ratio) when both GEMMs were measured."""
    values: dict[str, Any] = {}
    for name in wanted:
        value = coefficients.get(name)
        if name == "gemm_eff" and isinstance(value, dict):
            value = {dtype: round(value[dtype], 4)}
            if fp8_share is not None:
                value["fp8"] = round(value[dtype] * fp8_share, 4)
        elif isinstance(value, float):
            value = float(f"{value:.4g}")
        if value is not None:
            values[name] = value
    return values
