"""The documentation: API examples run as written, and the mkdocs site builds strictly."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(markdown: str):
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def test_api_examples_run(tmp_path, monkeypatch, capsys):
    blocks = python_blocks((ROOT / "docs" / "api.md").read_text())
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "docs_api"}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "L1-wavelet at" in printed and "radial CSGM relative error" in printed and "| sense |" in printed


def test_pipeline_examples_run(tmp_path, monkeypatch, capsys):
    blocks = python_blocks((ROOT / "docs" / "pipeline.md").read_text())
    assert len(blocks) == 4
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "docs_pipeline"}
    for block in blocks:
        exec(compile(block, "docs/pipeline.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "voxel size (mm) (3.4375, 3.4375, 3.0)" in printed and "input ismrmrd" in printed
    assert "mask from the zeros: file" in printed and "contact_sheet.png" in printed


def test_cli_reference_is_generated_from_the_parser():
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        from cli_reference import MARKER, on_page_markdown
    finally:
        sys.path.pop(0)
    page = on_page_markdown(f"# CLI\n\n{MARKER}\n", None, None, None)
    for command in ("reconstruct", "evaluate", "synth", "train", "study", "demo"):
        assert f"## `mri-genprior {command}`" in page
    assert "--center-fraction" in page and "--resume" in page and MARKER not in page


def test_docs_site_builds_without_warnings(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "cli" / "index.html").exists()


def test_architecture_worked_example_is_one_file_plus_one_registry_line(synth_file):
    """The method added in docs/architecture.md registers and runs through the pipeline."""
    import h5py
    import numpy as np

    from mri_genprior.metrics import volume_metrics
    from mri_genprior.recon import MaskSpec, ReconOptions, reconstruct_volume
    from mri_genprior.solvers import METHODS, make_method, register

    blocks = python_blocks((ROOT / "docs" / "architecture.md").read_text())
    module = blocks[0].replace("from ..", "from mri_genprior.").replace("from .base", "from mri_genprior.solvers.base")
    namespace = {}
    exec(compile(module, "docs/architecture.md", "exec"), namespace)
    exec(blocks[1], {"register": register, "SmoothSense": namespace["SmoothSense"]})
    try:
        spec = MaskSpec("random", 4, 0.25)
        target = h5py.File(synth_file)["reconstruction_rss"][()]
        smooth, _ = reconstruct_volume(synth_file, make_method("smooth-sense"),
                                       ReconOptions(spec, device="cpu", progress=False))
        zero, _ = reconstruct_volume(synth_file, make_method("zero-filled"),
                                     ReconOptions(spec, device="cpu", progress=False))
        assert np.isfinite(smooth).all()
        assert volume_metrics(target, smooth)["SSIM"] > volume_metrics(target, zero)["SSIM"] + 0.05
    finally:
        METHODS.pop("smooth-sense", None)
