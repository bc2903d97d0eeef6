import numpy as np
import pytest
import torch

from mri_genprior import MriGenpriorError, masks


@pytest.mark.parametrize("kind", masks.FASTMRI_MASKS)
def test_fastmri_mask_equals_fastmri_apply_mask(kind):
    from fastmri.data.subsample import create_mask_for_mask_type
    from fastmri.data.transforms import apply_mask

    seed = masks.file_seed("file1000001.h5")
    ours = masks.fastmri_mask(kind, 368, 4, 0.08, seed)
    data = torch.ones(1, 640, 368, 2)  # fastMRI layout: (coils, H, W, re/im)
    _, ref, _ = apply_mask(data, create_mask_for_mask_type(kind, [0.08], [4]), seed=seed)
    np.testing.assert_array_equal(ours, ref.numpy().reshape(368))


def test_mask_is_deterministic_per_file_and_padding_respected():
    a = masks.make_mask("random", (640, 368), 4, 0.08, masks.file_seed("a.h5"), padding=(10, 358))
    b = masks.make_mask("random", (640, 368), 4, 0.08, masks.file_seed("a.h5"), padding=(10, 358))
    c = masks.make_mask("random", (640, 368), 4, 0.08, masks.file_seed("b.h5"), padding=(10, 358))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a[:10].sum() == 0 and a[358:].sum() == 0
    assert 3.0 < masks.acceleration(a, (10, 358)) < 5.5


def test_equispaced_acceleration_and_calibration():
    m = masks.fastmri_mask("equispaced_fraction", 320, 4, 0.08, seed=0)
    assert round(0.08 * 320) <= masks.calibration_width(m) <= round(0.08 * 320) + 2  # + adjacent equispaced lines
    assert masks.acceleration(m) == pytest.approx(4, rel=0.02)


def test_poisson_mask_2d():
    m = masks.make_mask("poisson", (96, 80), 4, 0.2, seed=3)
    assert m.shape == (96, 80)
    assert masks.calibration_width(m) >= 16
    assert 3 < masks.acceleration(m) < 5
    np.testing.assert_array_equal(m, masks.make_mask("poisson", (96, 80), 4, 0.2, seed=3))


def test_expand_and_errors():
    w = masks.expand(np.array([1, 0, 1], np.float32), (2, 3))
    np.testing.assert_array_equal(w, [[1, 0, 1], [1, 0, 1]])
    with pytest.raises(MriGenpriorError, match="does not match"):
        masks.expand(np.ones(4), (2, 3))
    with pytest.raises(MriGenpriorError, match="unknown fastMRI mask"):
        masks.fastmri_mask("spiral", 32, 4, 0.1, 0)
    with pytest.raises(MriGenpriorError, match="samples nothing"):
        masks.acceleration(np.zeros(8))
