"""Hand & Voroninski's landscape pieces: ρ_d, the empirical-risk gradient, the sign-flip rule."""

import math

import numpy as np
import pytest
import torch

from mri_genprior.experiments.landscape import GaussianMeasurements, recover, rho, risk_along_ray
from mri_genprior.priors.networks import ExpansiveReLU
from mri_genprior.solvers.latent import FitOptions, _sign_flip, fit


def test_rho_values():
    assert rho(1) == pytest.approx(0.0, abs=1e-12)  # one layer: the mirrored point collapses to 0
    assert rho(2) == pytest.approx(1 / math.pi)
    values = [rho(d) for d in range(1, 30)]
    assert all(a < b for a, b in zip(values, values[1:])) and 0.8 < values[-1] < 1


def test_risk_along_the_ray_has_its_mirrored_minimum_near_minus_rho():
    """Single draws scatter by about ±0.1 around −ρ₂ at these widths; their mean is close."""
    ts = np.linspace(-1, -0.02, 50)
    argmins = [ts[int(np.argmin(risk_along_ray((10, 200, 1000), 300, ts, seed)))] for seed in range(6)]
    assert abs(np.mean(argmins) + rho(2)) < 0.06


def test_gradient_matches_the_closed_form():
    """One plain GD step of ``fit`` equals z − η · 2 Λ_zᵀ Aᵀ (A G(z) − y), Λ_z = Π W_{i,+,z}."""
    g = torch.Generator().manual_seed(0)
    net = ExpansiveReLU((5, 40, 160), seed=0, image_shape=(1, 160)).requires_grad_(False)
    op = GaussianMeasurements(60, 160, g)
    z0, z = torch.randn(1, 5, generator=g), torch.randn(1, 5, generator=g)
    with torch.no_grad():
        y = op.forward(net(z0)[:, 0].to(torch.complex64))
    step = 0.01
    moved = fit(op, y, net, z, FitOptions(steps=1, lr=step, optimizer="sgd"), (1, 160)).z
    w1, w2 = (layer.weight.double() for layer in net.layers)
    h1 = w1 @ z[0].double()
    lam = torch.diag((w2 @ torch.relu(h1) > 0).double()) @ w2 @ torch.diag((h1 > 0).double()) @ w1
    a = op.a.double()
    grad = 2 * lam.T @ a.T @ (a @ (lam @ z[0].double()) - y[0].real.double())
    torch.testing.assert_close(moved[0].double(), z[0].double() - step * grad, rtol=1e-4, atol=1e-6)


def test_sign_flip_rule_flips_exactly_where_the_negation_is_better():
    z = torch.tensor([[1.0, 2.0], [-0.5, 0.5], [3.0, -1.0]], requires_grad=True)
    target = torch.tensor([[-1.0, -2.0], [-1.0, 0.5], [-3.0, 1.0]])  # items 0 and 2 are mirrored

    def objective(latent):
        return (latent - target).pow(2).sum(1), None, None

    optimizer = torch.optim.Adam([z], lr=0.1)
    objective(z)[0].sum().backward()
    optimizer.step()
    before = z.detach().clone()
    assert _sign_flip(z, objective, optimizer) == 2
    torch.testing.assert_close(z.detach(), before * torch.tensor([[-1.0], [1.0], [-1.0]]))
    state = optimizer.state[z]
    assert torch.all(state["exp_avg"][[0, 2]] == 0) and state["exp_avg"][1, 0] != 0


def test_phase_retrieval_succeeds_with_enough_magnitude_measurements():
    outcome = recover((10, 100, 500), 400, 20, sign_flip=True, seed=0, magnitude=True)
    assert outcome.success().float().mean() > 0.5
