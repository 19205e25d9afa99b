"""TensorBoard image dashboards (vae_lab/probes/images.py): grid tiling, the latent grid's points, images
in the event file of real (tiny, in-process) runs, no effect on training, no-ops where they do not apply.

The runs go through ``vae_lab.train.train`` with the composed config (the callbacks as
conf/callbacks/default.yaml registers them), in process to keep the file quick; the CLI is covered by
tests/test_cli.py."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from pytorch_lightning.loggers import TensorBoardLogger
from scipy import stats
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.distributions import Gamma, Independent

from vae_lab.config import CONF_DIR
from vae_lab.model.posteriors import GaussianHead, VonMisesHead
from vae_lab.model.priors import CircularUniformPrior, NormalPrior
from vae_lab.model.vae import VAE
from vae_lab.probes import (
    LatentGridImages,
    PriorSampleImages,
    ReconstructionImages,
    marginal_quantiles,
    tile_images,
)
from vae_lab.probes.images import decoded_means, interleave_rows
from vae_lab.train import train

TAGS = ("images/reconstructions", "images/prior_samples", "images/latent_grid")


# -- tiling ------------------------------------------------------------------------------------------
def test_tile_images_lays_out_a_hand_made_example():
    images = torch.tensor([1.0, 2.0, 3.0]).reshape(3, 1, 1).expand(3, 2, 2)  # three 2x2 images
    grid = tile_images(images, ncol=2, padding=1, pad_value=0.0)
    o = 0.0
    expected = torch.tensor(
        [
            [o, o, o, o, o, o, o],
            [o, 1, 1, o, 2, 2, o],
            [o, 1, 1, o, 2, 2, o],
            [o, o, o, o, o, o, o],
            [o, 3, 3, o, o, o, o],  # the empty cell of the last row is padding
            [o, 3, 3, o, o, o, o],
            [o, o, o, o, o, o, o],
        ]
    )
    assert torch.equal(grid, expected.unsqueeze(0))
    # channels are kept; ncol larger than N gives one row; no padding is a plain mosaic
    assert tile_images(torch.rand(5, 3, 4, 6), ncol=2).shape == (3, 3 * 5 + 1, 2 * 7 + 1)
    assert tile_images(torch.rand(3, 8, 8), ncol=10).shape == (1, 10, 3 * 9 + 1)
    mosaic = tile_images(torch.arange(4.0).reshape(4, 1, 1), ncol=2, padding=0)
    assert torch.equal(mosaic, torch.tensor([[[0.0, 1.0], [2.0, 3.0]]]))


def test_interleave_rows_puts_each_row_of_inputs_above_its_reconstructions():
    top, bottom = torch.arange(3.0), torch.arange(10.0, 13.0)
    merged = interleave_rows(top, bottom, ncol=2, fill=-1.0)
    assert merged.tolist() == [0.0, 1.0, 10.0, 11.0, 2.0, -1.0, 12.0, -1.0]


# -- the latent grid -----------------------------------------------------------------------------------
def small_vae(posterior, prior, input_dim: int = 6) -> VAE:
    from conftest import tiny_vae

    return tiny_vae(posterior=posterior, prior=prior, input_dim=input_dim)


def test_gaussian_grid_is_the_prior_quantile_square_in_plot_orientation():
    n = 5
    callback = LatentGridImages(n_per_side=n)
    model = small_vae(GaussianHead(2), NormalPrior(2, scale=2.0))
    levels = torch.distributions.Normal(0.0, 2.0).icdf((torch.arange(n) + 0.5) / n)
    assert torch.allclose(callback.levels(model), levels.unsqueeze(1).expand(n, 2))
    grid = callback.grid(model).reshape(n, n, 2)  # (row, column, coordinate)
    assert torch.allclose(grid[0, 0], torch.stack([levels[0], levels[-1]]))  # top left: z1 low, z2 high
    assert torch.allclose(grid[-1, -1], torch.stack([levels[-1], levels[0]]))  # bottom right
    assert torch.allclose(grid[:, :, 0], levels.expand(n, n))  # z1 along the columns
    assert torch.allclose(grid[:, :, 1], levels.flip(0).unsqueeze(1).expand(n, n))  # z2 up the rows


def test_von_mises_grid_covers_the_torus_and_enters_the_decoder_as_cos_sin():
    n = 4
    callback = LatentGridImages(n_per_side=n)
    model = small_vae(VonMisesHead(2), CircularUniformPrior(2)).eval()
    angles = torch.tensor([-math.pi, -math.pi / 2, 0.0, math.pi / 2])
    assert torch.allclose(callback.levels(model), angles.unsqueeze(1).expand(n, 2))
    z = callback.grid(model)
    with torch.no_grad():
        image = callback.render(None, model, (2, 3))
        by_hand = model.decoder(torch.cat([z.cos(), z.sin()], -1)).sigmoid()
    assert image.shape == (1, n * 3 + 1, n * 4 + 1)
    assert torch.equal(image, tile_images(by_hand.reshape(-1, 2, 3), n))


def test_quantiles_of_a_prior_without_icdf_are_estimated_within_their_standard_error():
    shape = torch.tensor([0.5, 3.0])
    prior = Independent(Gamma(shape, torch.ones(2)), 1)
    probs = torch.tensor([0.1, 0.5, 0.9]).unsqueeze(1).expand(3, 2)
    n_samples = 20000
    torch.manual_seed(0)
    estimate = marginal_quantiles(prior, probs, n_samples).numpy()
    for i, a in enumerate(shape.tolist()):
        exact = stats.gamma.ppf(probs[:, i].numpy(), a)
        # standard error of a sample quantile: sqrt(p (1 - p) / N) / density at the quantile
        se = np.sqrt(probs[:, i].numpy() * (1 - probs[:, i].numpy()) / n_samples) / stats.gamma.pdf(exact, a)
        assert (np.abs(estimate[:, i] - exact) < 4 * se).all(), (estimate[:, i], exact, se)


# -- real runs -------------------------------------------------------------------------------------------
def run(root: Path, name: str, *overrides: str) -> Path:
    """A tiny digits run in process (``+debug=fast``: 5 training and 2 validation batches an epoch)."""
    out = root / name
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "+debug=fast",
                f"paths.output_dir={out}",
                "callbacks.progress_bar.refresh_rate=0",
                *overrides,
            ],
        )
    train(cfg)
    return out


def images(run_dir: Path) -> dict[str, list[tuple[int, int, int]]]:
    """tag -> [(step, width, height), ...] of the images in the run's TensorBoard event files."""
    found: dict[str, list[tuple[int, int, int]]] = {}
    paths = sorted((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert paths, f"no event file in {run_dir / 'tensorboard'}"
    for path in paths:
        accumulator = EventAccumulator(str(path), size_guidance={"images": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["images"]:
            found.setdefault(tag, []).extend((e.step, e.width, e.height) for e in accumulator.Images(tag))
    return found


def test_a_gaussian_run_logs_the_three_grids_and_is_unchanged_by_them(tmp_path):
    """Two epochs (the images of epoch 0 are drawn before the training of epoch 1), with and without the
    callbacks: metrics.csv is the same, byte for byte, so the callbacks neither consume the global random
    stream nor change the model."""
    common = ["model.latent_dim=2", "trainer.max_epochs=2", "test=false"]
    with_images = run(tmp_path, "with", *common)
    without = run(tmp_path, "without", *common, *(f"~callbacks.{tag.split('/')[1]}" for tag in TAGS))

    found = images(with_images)
    # digits are 8x8: 32 inputs + 32 reconstructions and 64 samples on an 8 x 8 grid of 9-pixel cells;
    # the latent grid is 15 x 15 cells
    sizes = {"images/reconstructions": 73, "images/prior_samples": 73, "images/latent_grid": 15 * 9 + 1}
    for tag in TAGS:
        assert found[tag] == [(5, sizes[tag], sizes[tag]), (10, sizes[tag], sizes[tag])], tag
    assert not [tag for tag in images(without) if tag.startswith("images/")]
    assert (with_images / "metrics.csv").read_bytes() == (without / "metrics.csv").read_bytes()


def test_a_von_mises_run_logs_the_torus_grid(tmp_path):
    found = images(run(tmp_path, "vm", "posterior=vonmises", "model.latent_dim=2", "test=false"))
    assert found["images/latent_grid"] == [(5, 136, 136)]
    assert {tag for tag in found if tag.startswith("images/")} == set(TAGS)


def test_the_latent_grid_is_left_out_for_latent_dim_other_than_2(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="vae_lab.probes.images"):
        found = images(run(tmp_path, "d3", "model.latent_dim=3", "test=false"))
    assert set(found) == {"images/reconstructions", "images/prior_samples"}
    messages = [r.getMessage() for r in caplog.records if r.name == "vae_lab.probes.images"]
    assert sum("images/latent_grid: the latent space is 3-D, not 2-D" in m for m in messages) == 1


# -- where they do not apply ---------------------------------------------------------------------------
class FakeTrainer:
    """What the callbacks read of a trainer."""

    def __init__(self, datamodule, loggers):
        self.datamodule, self.loggers = datamodule, loggers
        self.sanity_checking, self.is_global_zero = False, True
        self.current_epoch = self.global_step = 0


class BagOfWords:
    image_shape = None
    input_dim = 6


def test_non_image_data_is_a_no_op_said_once(tmp_path, caplog):
    model = small_vae(GaussianHead(2), NormalPrior(2)).train()
    logger = TensorBoardLogger(tmp_path, name="tensorboard", version="")
    trainer = FakeTrainer(BagOfWords(), [logger])
    callbacks = [ReconstructionImages(), PriorSampleImages(), LatentGridImages()]
    rng = torch.get_rng_state()
    with caplog.at_level(logging.INFO, logger="vae_lab.probes.images"):
        for epoch in range(2):
            trainer.current_epoch = epoch
            for callback in callbacks:
                callback.on_validation_epoch_end(trainer, model)
    logger.experiment.flush()
    assert images(tmp_path) == {}
    assert torch.equal(torch.get_rng_state(), rng) and model.training
    messages = [r.getMessage() for r in caplog.records if r.name == "vae_lab.probes.images"]
    assert len(messages) == 1 and "not images" in messages[0], messages


def test_images_need_a_tensorboard_logger_and_leave_the_model_as_it_was(tmp_path):
    class Digits:
        image_shape, input_dim = (2, 3), 6

        def val_dataloader(self):
            return [torch.bernoulli(torch.full((10, 6), 0.5), generator=torch.Generator().manual_seed(0))]

    model = small_vae(GaussianHead(2), NormalPrior(2)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    callbacks = [ReconstructionImages(n_images=4, ncol=2), PriorSampleImages(n_images=4), LatentGridImages()]
    for callback in callbacks:
        callback.on_validation_epoch_end(FakeTrainer(Digits(), []), model)  # no TensorBoard: nothing
        assert callback.images == 0
    logger = TensorBoardLogger(tmp_path, name="tensorboard", version="")
    rng = torch.get_rng_state()
    for callback in callbacks:
        callback.on_validation_epoch_end(FakeTrainer(Digits(), [logger]), model)
        assert callback.images == 1
    logger.experiment.flush()
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(m.training for m in model.modules())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    found = images(tmp_path)
    # images of 2 x 3 pixels (height x width), 1 pixel apart: 4 inputs in 2 rows of 2, each row followed by
    # its reconstructions; 4 samples in one row; 15 x 15 grid cells
    assert found["images/reconstructions"] == [(0, 2 * 4 + 1, 4 * 3 + 1)]
    assert found["images/prior_samples"] == [(0, 4 * 4 + 1, 2 + 2)]
    assert found["images/latent_grid"] == [(0, 15 * 4 + 1, 15 * 3 + 1)]


def test_a_failing_image_turns_its_callback_off_with_a_warning(tmp_path, caplog):
    class Digits:
        image_shape, input_dim = (2, 3), 6

    class Unsampleable(torch.nn.Module):
        def forward(self):
            raise NotImplementedError("no sampler")

    model = small_vae(GaussianHead(2), NormalPrior(2))
    model.prior = Unsampleable()
    callback = PriorSampleImages()
    logger = TensorBoardLogger(tmp_path, name="tensorboard", version="")
    with caplog.at_level(logging.WARNING, logger="vae_lab.probes.images"):
        callback.on_validation_epoch_end(FakeTrainer(Digits(), [logger]), model)
    assert not callback.enabled and callback.images == 0
    assert "images/prior_samples: turned off after an error: NotImplementedError: no sampler" in caplog.text


def test_decoded_means_are_pixel_probabilities():
    model = small_vae(GaussianHead(2), NormalPrior(2))
    z = torch.randn(7, 2)
    with torch.no_grad():
        means = decoded_means(model, z)
        assert torch.equal(means, model.decoder(z).sigmoid())
    assert means.shape == (7, 6) and bool(((means >= 0) & (means <= 1)).all())
