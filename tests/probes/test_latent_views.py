"""The latent views (vae_lab/probes/latent_views.py, denoising.py, scalar_layout.py): posterior means, the
scatter figure, the embedding projector, the denoising grid and the custom-scalars layout, in the event files
of tiny in-process digits runs, which the views leave unchanged."""

from __future__ import annotations

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from test_images import images, run

from vae_lab.data import DigitsDataModule
from vae_lab.model.posteriors import DirichletHead, GaussianHead, VonMisesHead
from vae_lab.probes import posterior_means
from vae_lab.probes.latent_views import scatter_figure
from vae_lab.probes.scalar_layout import scalar_layout

VIEWS = ("latent_scatter", "latent_projector", "scalar_layout", "denoising")


def test_posterior_means_are_the_location_or_the_mean():
    params = torch.randn(5, 6)
    gaussian = GaussianHead(3)(params)
    assert torch.equal(posterior_means(gaussian), gaussian.base_dist.loc)
    von_mises = VonMisesHead(3)(params)
    assert torch.equal(posterior_means(von_mises), von_mises.base_dist.loc)  # the mean angle
    dirichlet = DirichletHead(3)(params[:, :3])
    assert torch.allclose(posterior_means(dirichlet), dirichlet.mean) and posterior_means(
        dirichlet
    ).shape == (5, 3)


def test_scatter_figures_for_plane_torus_and_circle():
    labels = torch.arange(40) % 10
    plane = scatter_figure(torch.randn(40, 2), labels, "gaussian", "t")
    assert plane.axes[0].get_xlabel() == "z1" and plane.axes[0].get_legend() is not None
    torus = scatter_figure(torch.rand(40, 2) * 10, None, "vonmises", "t")
    assert "torus" in torus.axes[0].get_title() and torus.axes[0].get_xlim() == (-torch.pi, torch.pi)
    circle = scatter_figure(torch.rand(40, 1) * 6, labels, "vonmises", "t")
    assert circle.axes[0].get_xlabel() == "cos z" and "unit circle" in circle.axes[0].get_title()


def test_the_layout_puts_every_compared_estimator_of_a_group_on_one_chart():
    layout = scalar_layout(["encoder", "decoder"], ["score", "rsvi"])
    assert layout["ELBO"]["val: elbo, recon, kl"] == ["Multiline", ["^val/elbo$", "^val/recon$", "^val/kl$"]]
    assert layout["gradient variance"]["grad/var/encoder"] == [
        "Multiline",
        ["^grad/var/encoder$", "^grad/var/encoder/score$", "^grad/var/encoder/rsvi$"],
    ]
    assert set(layout["gradient SNR"]) == {"grad/snr/encoder", "grad/snr/decoder"}
    assert set(scalar_layout([], [])) == {"ELBO"}
    clip = scalar_layout([], [], clips=True)["posterior clip"]
    assert clip["val: clip_low, clip_high"] == ["Multiline", ["^val/clip_low$", "^val/clip_high$"]]
    assert set(clip) == {"val: clip_low, clip_high", "test: clip_low, clip_high"}


def custom_scalars(run_dir) -> layout_pb2.Layout:
    for path in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(path), size_guidance={"tensors": 0})
        accumulator.Reload()
        if "custom_scalars__config__" in accumulator.Tags()["tensors"]:
            layout = layout_pb2.Layout()
            event = accumulator.Tensors("custom_scalars__config__")[0]
            layout.ParseFromString(event.tensor_proto.string_val[0])
            return layout
    raise AssertionError("no custom-scalars layout")


def test_the_views_are_written_and_leave_training_unchanged(tmp_path):
    """A 2-D digits run with test phase, with and without the views: metrics.csv is the same byte for byte;
    the scatter figures of val and test, the two embeddings with labels and thumbnails and the layout
    are there."""
    common = [
        "model.latent_dim=2",
        "callbacks.grad_variance.compare=[score]",
        "callbacks.grad_variance.every_n_steps=2",
    ]
    with_views = run(tmp_path, "with", *common)
    without = run(tmp_path, "without", *common, *(f"~callbacks.{name}" for name in VIEWS))
    assert (with_views / "metrics.csv").read_bytes() == (without / "metrics.csv").read_bytes()

    found = images(with_views)
    assert {"latent/scatter/val", "latent/scatter/test"} <= set(found) and "images/denoising" not in found
    assert not {t for t in images(without) if t.startswith("latent/")}

    board = with_views / "tensorboard"
    config = (board / "projector_config.pbtxt").read_text()
    labels = DigitsDataModule().labels("val")
    for split in ("val", "test"):
        assert f'tensor_name: "latent/{split}:00005"' in config
        folder = board / "00005" / f"latent%2f{split}"
        rows = (folder / "tensors.tsv").read_text().splitlines()
        assert len(rows) == 200 and all(len(r.split("\t")) == 2 for r in rows)
        assert (folder / "sprite.png").is_file()
    metadata = (board / "00005" / "latent%2fval" / "metadata.tsv").read_text().split()
    assert metadata == [str(v) for v in labels.tolist()]

    layout = custom_scalars(with_views)
    charts = {c.title: list(c.multiline.tag) for category in layout.category for c in category.chart}
    assert charts["grad/var/encoder"] == ["^grad/var/encoder$", "^grad/var/encoder/score$"]
    assert charts["test: elbo, recon, kl"] == ["^test/elbo$", "^test/recon$", "^test/kl$"]
    header = (with_views / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"grad/var/encoder", "grad/var/encoder/score", "val/elbo", "val/recon", "val/kl"} <= set(header)


def test_a_denoising_run_reproduces_shows_its_grid_and_differs_from_a_clean_one(tmp_path):
    common = ["test=false"]
    noisy = run(tmp_path, "noisy", *common, "data.input_noise=0.2")
    again = run(tmp_path, "again", *common, "data.input_noise=0.2", "~callbacks.denoising")
    clean = run(tmp_path, "clean", *common)
    assert (noisy / "metrics.csv").read_bytes() == (again / "metrics.csv").read_bytes()
    assert (noisy / "metrics.csv").read_bytes() != (clean / "metrics.csv").read_bytes()
    # 24 inputs, 8 a row: 3 rounds of noisy / clean / reconstructed rows of 9-pixel cells
    assert images(noisy)["images/denoising"] == [(5, 73, 9 * 9 + 1)]
    assert "images/denoising" not in images(clean)
