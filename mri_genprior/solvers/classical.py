"""Classical baselines: zero-filled, and regularised least squares solved by SigPy.

``SigpyRecon`` solves ``min_x ½‖A x − y‖² + R(x)`` for each slice with
``sigpy.app.LinearLeastSquares`` on the physics' own SigPy Linop (``physics.linop(b)``),
so it runs on any physics, Cartesian or not. The regulariser is a named part:

=============  =====================================  ==========================================
regularizer    R(x)                                    SigPy solver (as ``sigpy.mri.app`` uses)
=============  =====================================  ==========================================
``l2``         λ‖x‖² (``SenseRecon``)                  conjugate gradient
``wavelet``    λ‖Ψx‖₁, Ψ Daubechies-4 (``L1WaveletRecon``)  proximal gradient
``tv``         λ‖∇x‖₁ (``TotalVariationRecon``)        primal-dual hybrid gradient, dual step 0.3√λ
=============  =====================================  ==========================================

The wavelet threshold can be cycle-spun (``cycle_spin``, :class:`CycleSpin`; the
``l1-wavelet`` method's default); TV's finite differences are shift-invariant already.
TV's primal-dual steps are balanced to λ: dual step σ = 0.3√λ (:data:`TV_DUAL`), primal step
τ = 1 / (σ‖[A; ∇]‖²) (SigPy's default σ = 1 leaves 100 iterations far from converged).
docs/real_data.md has the measurements behind both.

Regularisation weights assume the k-space was normalised by
:func:`mri_genprior.physics.scale_factor` (image magnitudes of order 1).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Optional, Union

import numpy as np
import torch

from .. import MriGenpriorError, check_choice
from ..physics.operators import array_to_tensor, cupy, tensor_to_array
from ..progress import iterate
from .base import Method, Result, number_or_auto


@dataclasses.dataclass
class ZeroFilled(Method):
    """The physics' zero-filled image (Cartesian SENSE: RSS of the inverse FFT of the zero-filled k-space),
    fastMRI's baseline as it is: no noise floor."""

    needs_maps = False
    noise_floor = False

    def reconstruct(self, y, physics) -> Result:
        return Result(physics.zero_filled(y).cpu().numpy())


WAVELET = "db4"  # the wavelet regularizer's transform (wavelet_span reads its levels from the same name)
TV_DUAL = 0.3  # TV's primal-dual dual step σ = TV_DUAL √λ (converged in 300 iterations, docs/real_data.md)


class Regularizer:
    """``R_λ`` of ``min_x ½‖A x − y‖² + R_λ(x)``, as the keyword terms of SigPy's
    ``LinearLeastSquares`` (which picks its solver from them)."""

    spins = False  # whether its proximal operator depends on the image's position (cycle spinning helps)
    continues = False  # whether a warm ladder's λ holds for a continuation down its rungs on all the data

    def terms(self, shape, lamda: float) -> dict:
        """The solver's keywords for images of ``shape`` at weight ``lamda``."""
        return {"lamda": lamda}

    def step_operator(self, linop):
        """The operator whose largest eigenvalue sets the solver's step (None: none needed)."""
        return None

    def step(self, terms: dict, bound: float) -> dict:
        """The solver's step keywords from ``bound``, that largest eigenvalue."""
        return {}


class Tikhonov(Regularizer):
    """``λ‖x‖²``: conjugate gradient on the normal equations (SigPy's ``SenseRecon``). A warm
    ladder's λ holds for a continuation down the rungs above it (``continues``: measured in
    docs/real_data.md, "Once per volume")."""

    continues = True


class WaveletL1(Regularizer):
    """``λ‖Ψx‖₁``, Ψ the :data:`WAVELET` transform: proximal gradient, step 1/‖A‖² (SigPy's
    ``L1WaveletRecon``)."""

    spins = True

    def terms(self, shape, lamda):
        import sigpy as sp

        wavelet = sp.linop.Wavelet(shape, wave_name=WAVELET)

        def g(x):
            with sp.get_device(x):
                return lamda * sp.get_array_module(x).sum(abs(wavelet(x))).item()

        return {"proxg": sp.prox.UnitaryTransform(sp.prox.L1Reg(wavelet.oshape, lamda), wavelet), "g": g}

    def step_operator(self, linop):
        return linop

    def step(self, terms, bound):
        return {"alpha": 1 / bound}


class TotalVariation(Regularizer):
    """``λ‖∇x‖₁``: primal-dual hybrid gradient (SigPy's ``TotalVariationRecon``) with dual step
    σ = :data:`TV_DUAL` √λ (the dual variable of λ‖·‖₁ is bounded by λ while the image is of
    order 1) and primal step 1 / (σ‖[A; ∇]‖²)."""

    def terms(self, shape, lamda):
        import sigpy as sp

        gradient = sp.linop.FiniteDifference(shape)

        def g(x):
            with sp.get_device(x):
                return lamda * sp.get_array_module(x).sum(abs(x)).item()

        return {"proxg": sp.prox.L1Reg(gradient.oshape, lamda), "g": g, "G": gradient,
                "sigma": TV_DUAL * lamda ** 0.5 if lamda > 0 else 1.0}  # 1.0: SigPy's σ (λ = 0: least squares)

    def step_operator(self, linop):
        import sigpy as sp

        return sp.linop.Vstack([linop, sp.linop.FiniteDifference(linop.ishape)])

    def step(self, terms, bound):
        return {"tau": 1 / (terms["sigma"] * bound)}


REGULARIZERS = {"l2": Tikhonov(), "wavelet": WaveletL1(), "tv": TotalVariation()}


class CycleSpin:
    """A proximal operator applied to its input circularly shifted by a random offset per
    axis, the shift undone after (cycle spinning, Coifman & Donoho 1995; what BART
    ``pics`` does to its wavelet threshold unless ``-n``). A decimated wavelet transform
    depends on the image's position modulo ``2**levels``; each iteration of the solver
    thresholds it at another position, so the solution is regularised, on average, by
    the translation-invariant transform.

    Parameters
    ----------
    prox : sigpy.prox.Prox
        The proximal operator of an array of ``prox.shape``.
    span : int
        The largest shift, in pixels; each axis's is drawn uniformly from ``0 … span``.
    seed : int
        The seed of the shifts; a solve with the same seed draws the same shifts.
    """

    def __init__(self, prox, span: int, seed: int):
        self.prox, self.span, self.shape = prox, span, prox.shape
        self.rng = np.random.default_rng(seed)

    def __call__(self, alpha, x):
        import sigpy as sp

        xp, axes = sp.get_array_module(x), tuple(range(x.ndim))
        shift = tuple(int(s) for s in self.rng.integers(0, self.span, size=x.ndim, endpoint=True))
        return xp.roll(self.prox(alpha, xp.roll(x, shift, axes)), tuple(-s for s in shift), axes)


def wavelet_span(shape) -> int:
    """``2**levels`` of SigPy's Daubechies-4 transform of an image of ``shape`` (odd sizes
    padded to even, levels as ``pywt.wavedecn`` chooses): the period of its shift dependence."""
    import pywt

    return 2 ** pywt.dwt_max_level(min((n + 1) // 2 * 2 for n in shape), WAVELET)


@contextlib.contextmanager
def seeded_sigpy_random(seed: int, device):
    """Seed the global NumPy (or CuPy) RNG for the duration, then restore NumPy's.

    SigPy's power iteration (``sigpy.app.MaxEig``, which sets the step size of the
    wavelet and TV solvers) starts from that global RNG; unseeded, the same call gave
    results differing by up to 1e-3 between runs.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    if device.type == "cuda":
        cupy().random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


LADDER = tuple(10.0 ** (-k / 2) for k in range(11))  # λ = 1 … 1e-5, half-decade steps, largest first
PATIENCE = 1.1  # a rung is worse than another when its validation error exceeds it by this factor
TOP_RUNGS = 2  # λ = 1 and 0.316: nearly flat images, whose validation error can dip by chance
LADDERS = ("warm", "zero")  # the fold solves down the λ ladder: from the rung above's, or from zero
STARTS = ("auto", "warm", "zero")  # the final solve's start (see SigpyRecon)
REFINE_STEP = 10.0 ** 0.25  # refine: the chosen rung's neighbours are λ × and ÷ this (quarter decades)
REFINE_TOLERANCE = 0.02  # refine: the largest λ whose held-out error is within 2 % of the lowest wins
SCOPES = ("auto", "volume", "slice")  # lamda=auto: chosen once per volume (its central slice) or per slice
NOISE_POWER = 1.0  # scope=volume: λ of a slice ∝ its noise std to this power
CONTINUATION = 10  # scope=volume after a warm ladder: iterations per rung of each slice's continuation


def _lowest(errors, start: int) -> int:
    """The index of the lowest of ``errors[start:]``."""
    return min(range(start, len(errors)), key=errors.__getitem__)


def chosen_rung(errors) -> int:
    """The rung of the ladder whose validation ``errors`` win: the lowest, except that a
    minimum on the top :data:`TOP_RUNGS` rungs gives way to the best rung below them when
    that is within :data:`PATIENCE` of it (below the top the error can rise for a few rungs
    and fall again)."""
    best = _lowest(errors, 0)
    if best < TOP_RUNGS < len(errors):
        below = _lowest(errors, TOP_RUNGS)
        if errors[below] <= PATIENCE * errors[best]:
            return below
    return best


def ladder_done(errors) -> bool:
    """Whether the λ ladder may stop: the best of its validation ``errors`` below the top
    :data:`TOP_RUNGS` rungs has two rungs after it, both more than :data:`PATIENCE` × it.
    Near the top the error can rise for a few rungs before it falls (a synthetic 256² scan
    at 4×: 32.3, 36.0, 35.6, …, 16.1 at λ = 3e-4), so a minimum there never stops it."""
    if len(errors) <= TOP_RUNGS:
        return False
    best = _lowest(errors, TOP_RUNGS)
    return len(errors) - 1 - best >= 2 and min(errors[-2:]) > PATIENCE * errors[best]


def step_bound(linop, regularizer: str):
    """The λ-independent quantity that sets the step of ``regularizer``'s solver on ``linop``:
    the largest eigenvalue of its :meth:`Regularizer.step_operator`'s normal operator
    (``AᴴA`` for proximal gradient, ``AᴴA + ∇ᴴ∇`` for primal-dual), by SigPy's power
    iteration; None where no step is needed (conjugate gradient). Computed once per
    operator, it spares every solve on it its own."""
    import sigpy as sp

    stacked = REGULARIZERS[regularizer].step_operator(linop)
    if stacked is None:
        return None
    return sp.app.MaxEig(stacked.N, dtype=np.complex64, device=sp.get_device(stacked), show_pbar=False).run()


def _noise_std(physics, y, b: int) -> Optional[float]:
    """Slice ``b``'s k-space noise std (``physics.noise_std``), or None where it cannot be
    estimated (no sampled edge rows) or is zero (noiseless data)."""
    sigma = float(physics.select([b]).noise_std(y[b:b + 1])[0])
    return sigma if 0 < sigma < float("inf") else None


def _solve(linop, y, regularizer: str, lamda: float, max_iter: int, *, x=None, spin=None, bound=None):
    """``min_x ½‖A x − y‖² + R_λ(x)`` with SigPy, from ``x`` (warm start) or zero; with
    ``spin`` (a seed), R's proximal operator cycle-spun (:class:`CycleSpin`, wavelets); with
    ``bound`` (:func:`step_bound` of ``linop``), the step from it instead of a power iteration."""
    import sigpy as sp

    rule = REGULARIZERS[regularizer]
    terms = rule.terms(linop.ishape, lamda)
    if bound is not None:
        terms.update(rule.step(terms, bound))
    if spin is not None:
        terms["proxg"] = CycleSpin(terms["proxg"], wavelet_span(linop.ishape), spin)
    x = None if x is None else x.copy()
    return sp.app.LinearLeastSquares(linop, y, x=x, max_iter=max_iter, show_pbar=False, **terms).run()


@dataclasses.dataclass
class SigpyRecon(Method):
    """``min_x ½‖A x − y‖² + R(x)`` per slice with ``sigpy.app.LinearLeastSquares`` (see the module docstring).

    ``lamda="auto"`` chooses λ without ground truth (per slice; see ``scope``), by ``folds``-fold
    cross-validation in k-space: the physics deals the measured samples that undersampling
    could have missed (outside the calibration region; eighths of phase-encode lines for
    1-D Cartesian masks, see ``SensePhysics.validation_folds``) into ``folds`` sets; for each set left out, the solves run down the
    ladder :data:`LADDER` (largest λ first; with ``ladder="warm"`` each warm-started from
    the last, with ``"zero"`` each from zero, the solve a fixed λ runs; ``fold_iter``
    iterations each, 0: ``max_iter``; fewer save time but bias the choice toward larger λ
    where the fold solves are not converged, docs/real_data.md), and the λ
    whose solutions best predict the left-out samples wins (their squared errors summed
    over the folds; with ``weighted_holdout``, each weighted by
    ``physics.validation_weights()``, on Cartesian k-space the distance from the centre),
    except
    that a win on the top two rungs (nearly flat images) needs no rung below within 10 %
    (:func:`chosen_rung`). The ladder stops once the two rungs after the best rung below
    the top are both more than 10 % (:data:`PATIENCE`) worse than it (:func:`ladder_done`).
    With ``refine`` (``ladder="zero"`` only), the folds are also solved at the chosen
    rung's quarter-decade neighbours (:data:`REFINE_STEP`), and of the three the largest λ
    whose held-out error is within 2 % (:data:`REFINE_TOLERANCE`) of the lowest wins: the
    half-decade rungs alone missed the SSIM-best λ by a rung where the error curve is flat,
    and near-ties favour the smoother image (docs/real_data.md, "λ").
    The final solve uses every sample, from zero or from the warm-started folds' mean at
    the chosen λ. With ``start="auto"`` the folds are also solved at that λ with the start
    the ladder did not use (from zero after a warm ladder; after a zero ladder, a warm
    ladder down to that λ), and the start whose fold solutions predict their held-out
    samples better wins (``"warm"`` or ``"zero"`` fixes it; ``"zero"`` after a zero ladder
    is the solve the chosen λ gives when fixed; a fixed start solves no other-start folds
    but the warm ladder a warm start after a zero ladder needs). The chosen λ, the
    ladder's errors, the refinement's λs and errors, the start and the other start's error
    (where its folds were solved) are in the diagnostics.
    ``weighted_holdout=False`` gives the plain sum, the rule before (measured against it in
    docs/real_data.md).
    ``cycle_spin`` (wavelets only) cycle-spins the threshold in every solve, folds and final
    (:class:`CycleSpin`, shifts seeded by ``seed`` and the slice, the same in every solve).

    ``scope="volume"`` (with ``lamda="auto"``) chooses λ once per volume of several slices, on
    its central slice (:meth:`for_volume`), and solves every slice at λ_b = λ (σ_b /
    σ_ref)^:data:`NOISE_POWER`, σ the slice's k-space noise std (``physics.noise_std``) in
    the normalised units the solves see: noise and anatomy are shared by the slices of a
    volume, what differs is each slice's normalisation (a soft threshold scales with the
    noise std). Each slice's solve must be the one the chosen λ was measured for: after
    ``ladder="zero"`` and ``start="zero"`` one solve from zero; after the warm ladder of a
    regulariser that ``continues`` (``l2``, ``start`` not ``"warm"``) a ``continuation``:
    :data:`CONTINUATION` iterations at each rung above λ_b (scaled alike), each from the
    last, then λ_b. ``scope="slice"`` chooses λ for every slice; ``"auto"`` is ``"volume"``
    where these conditions hold (every registered method), else ``"slice"``.
    ``noise_reference`` (σ_ref; it turns on that scaling) and ``continuation`` are set by
    :meth:`for_volume`, or by the caller with a fixed λ.
    """

    regularizer: str = "wavelet"
    lamda: Union[float, str] = "auto"
    max_iter: int = 100
    fold_iter: int = 0
    folds: int = 4
    weighted_holdout: bool = True
    ladder: str = "warm"
    start: str = "auto"
    cycle_spin: bool = False
    refine: bool = False
    seed: int = 0
    scope: str = "auto"
    noise_reference: Optional[float] = None
    continuation: int = 0

    def __post_init__(self):
        check_choice("parameter regularizer", self.regularizer, REGULARIZERS)
        self.lamda = number_or_auto("lamda", self.lamda)
        if self.folds < 2:
            raise MriGenpriorError(f"parameter folds: cross-validation needs at least 2, got {self.folds}")
        check_choice("parameter ladder", self.ladder, LADDERS)
        check_choice("parameter start", self.start, STARTS)
        if self.start == "warm" and self.lamda != "auto":
            raise MriGenpriorError("parameter start=warm applies to lamda=auto only; a fixed λ "
                                   f"({self.lamda}) is solved from zero")
        if self.refine and self.ladder != "zero":
            raise MriGenpriorError("parameter refine: applies to ladder=zero (the neighbours are solved from zero, "
                                   "as that ladder's rungs); add refine=false")
        if self.cycle_spin and not REGULARIZERS[self.regularizer].spins:
            raise MriGenpriorError(f"parameter cycle_spin: applies to the wavelet regularizer only, "
                                   f"not {self.regularizer!r}")
        if self.max_iter < 1:
            raise MriGenpriorError(f"parameter max_iter: expected a number of iterations >= 1, got {self.max_iter}")
        if self.fold_iter < 0:
            raise MriGenpriorError(f"parameter fold_iter: expected a number of iterations >= 1 (0: max_iter), "
                                   f"got {self.fold_iter}")
        check_choice("parameter scope", self.scope, SCOPES)
        once = (self.ladder, self.start) == ("zero", "zero") or (
            self.ladder == "warm" and self.start != "warm" and REGULARIZERS[self.regularizer].continues)
        if self.scope == "auto":
            self.scope = "volume" if once else "slice"
        if self.scope == "volume" and not once:
            raise MriGenpriorError("parameter scope=volume: needs ladder=zero start=zero (a warm ladder's λ holds "
                                   "for its warm-started path, not for one solve from zero), or the l2 "
                                   "regularizer's warm ladder without start=warm; or add scope=slice")
        if self.noise_reference is not None:
            self.noise_reference = float(self.noise_reference)
            if self.lamda == "auto" or not 0 < self.noise_reference < float("inf"):
                raise MriGenpriorError("parameter noise_reference: a noise std > 0 that scales a fixed λ per slice, "
                                       f"got {self.noise_reference} with lamda={self.lamda}")
        if self.continuation < 0 or (self.continuation and self.lamda == "auto"):
            raise MriGenpriorError("parameter continuation: iterations >= 0 per rung above a fixed λ, "
                                   f"got {self.continuation} with lamda={self.lamda}")

    def _auto_lamda(self, linop, y, folds, weights, spin):
        """(λ, the final solve's start (None: zero), diagnostics) for one slice's ``y``
        given boolean ``folds`` ``(K, 1, *y.shape[1:])``, the held-out errors' ``weights``
        ``(1, *y.shape[1:])`` (or 1.0; see the class docstring) and the solves' ``spin``
        (a seed, or None)."""
        import sigpy as sp

        xp = sp.get_array_module(y)
        held = [fold.astype(xp.float32) for fold in folds]
        train = []  # (operator, data, step bound) of each fold
        for h in held:
            op = sp.linop.Multiply(linop.oshape, 1 - h) * linop
            train.append((op, y * (1 - h), step_bound(op, self.regularizer)))

        def held_out(xs):
            return sum(float(xp.sum(weights * xp.abs(h * (linop(x) - y)) ** 2)) for h, x in zip(held, xs))

        def fold_solves(lamda, starts):
            return [_solve(op, data, self.regularizer, lamda, self.fold_iter or self.max_iter, x=x, spin=spin,
                           bound=bound)
                    for (op, data, bound), x in zip(train, starts)]

        zeros = [None] * len(held)
        xs, means, errors = zeros, [], []
        for lamda in iterate(LADDER, "λ ladder", unit="λ"):
            xs = fold_solves(lamda, xs if self.ladder == "warm" else zeros)
            errors.append(held_out(xs))
            means.append(sum(xs) / len(xs))
            if ladder_done(errors):
                break
        best = chosen_rung(errors)
        lamda, error, mean = LADDER[best], errors[best], means[best]
        record = {"ladder": list(LADDER[:len(errors)]), "validation_errors": errors,
                  "zero_filled_error": held_out([xp.zeros_like(xs[0])] * len(held))}
        if self.refine:  # the chosen rung's quarter-decade neighbours, solved from zero as the ladder's rungs
            tried = {lamda: (error, mean)}
            for neighbour in iterate((lamda * REFINE_STEP, lamda / REFINE_STEP), "λ refinement", unit="λ"):
                xs = fold_solves(neighbour, zeros)
                tried[neighbour] = (held_out(xs), sum(xs) / len(xs))
            lowest = min(e for e, _ in tried.values())
            lamda = max(t for t, (e, _) in tried.items() if e <= (1 + REFINE_TOLERANCE) * lowest)
            error, mean = tried[lamda]
            record["refinement"] = {"lamdas": list(tried), "validation_errors": [e for e, _ in tried.values()]}
        candidates = {self.ladder: (error, mean)}  # start: (held-out error, the folds' mean)
        other = "zero" if self.ladder == "warm" else "warm"
        if self.start == "auto" or self.start == other == "warm":  # the folds at the chosen λ, the other start
            if other == "zero":
                xs = fold_solves(lamda, zeros)
            else:
                xs = zeros
                for rung in iterate([t for t in LADDER if t > lamda] + [lamda], "warm-started λ ladder", unit="λ"):
                    xs = fold_solves(rung, xs)
            record[f"{other}_start_error"] = held_out(xs)
            candidates[other] = (record[f"{other}_start_error"], sum(xs) / len(xs))
        start = min(candidates, key=lambda s: candidates[s][0]) if self.start == "auto" else self.start
        return lamda, candidates[start][1] if start == "warm" else None, {"lamda": lamda, **record, "start": start}

    def _choose(self, y, physics, b: int, spin):
        """(λ, the final solve's start or None, diagnostics) for slice ``b`` of ``y``: by
        cross-validation with ``lamda="auto"``, else the fixed λ (scaled by the slice's
        noise std where ``noise_reference`` is set)."""
        if self.lamda != "auto":
            sigma = None if self.noise_reference is None else _noise_std(physics, y, b)
            scale = 1.0 if sigma is None else (sigma / self.noise_reference) ** NOISE_POWER
            x, rungs = None, [t for t in LADDER if t > self.lamda] if self.continuation else []
            if rungs:
                linop, yb = physics.linop(b), tensor_to_array(y[b])
                for rung in rungs:
                    x = _solve(linop, yb, self.regularizer, rung * scale, self.continuation, x=x, spin=spin)
            return self.lamda * scale, x, {"lamda": self.lamda * scale}
        rng = torch.Generator().manual_seed(self.seed + b)
        one = physics.select([b])
        folds = one.validation_folds(y[b:b + 1], self.folds, rng)[:, 0]
        weights = tensor_to_array(one.validation_weights()) if self.weighted_holdout else 1.0
        return self._auto_lamda(physics.linop(b), tensor_to_array(y[b]), tensor_to_array(folds), weights, spin)

    @property
    def chooses_per_volume(self) -> bool:
        return self.lamda == "auto" and self.scope == "volume"

    def for_volume(self, y, physics):
        """With ``lamda="auto"`` and ``scope="volume"``, this method at the λ cross-validation
        chooses on ``y`` (a volume's central slice) with ``noise_reference`` its noise std and,
        after a warm ladder, ``continuation`` :data:`CONTINUATION`, and that choice's
        diagnostics; otherwise itself."""
        import sigpy as sp

        if not self.chooses_per_volume:
            return self, {}
        chooser = self.replace(start=self.ladder, scope="slice")  # the slices follow the ladder's path: no other start
        with sp.get_device(tensor_to_array(y)), seeded_sigpy_random(0, y.device):
            lamda, _, record = chooser._choose(y, physics, 0, self.seed if self.cycle_spin else None)
        sigma, continuation = _noise_std(physics, y, 0), CONTINUATION if self.ladder == "warm" else 0
        return (self.replace(lamda=lamda, noise_reference=sigma, continuation=continuation),
                {**record, "noise_std": sigma, "continuation": continuation})

    def reconstruct(self, y, physics) -> Result:
        import sigpy as sp

        out, diagnostics = [], []
        for b in range(y.shape[0]):
            yb = tensor_to_array(y[b])
            spin = self.seed + b if self.cycle_spin else None
            with sp.get_device(yb), seeded_sigpy_random(b, y.device):
                lamda, x0, record = self._choose(y, physics, b, spin)
                x = _solve(physics.linop(b), yb, self.regularizer, lamda, self.max_iter, x=x0, spin=spin)
                out.append(array_to_tensor(x.astype(sp.get_array_module(yb).complex64), y.device))
            diagnostics.append({"method": self.name, **record, "steps": self.max_iter, "stopped_by": "steps"})
        return Result(np.stack([x.cpu().numpy() for x in out]), None, diagnostics)
