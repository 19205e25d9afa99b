"""Denoising (vae_lab/data/noise.py, ``data.input_noise``): salt-and-pepper noise reaches the encoder only,
in training mode only, reproducibly, without touching torch's global random stream."""

from __future__ import annotations

import pytest
import torch

from vae_lab.data import DigitsDataModule
from vae_lab.data.noise import InputNoise, salt_and_pepper
from vae_lab.errors import ConfigError


def test_salt_and_pepper_sets_a_fraction_p_of_the_pixels_half_to_0_half_to_1():
    p, n = 0.3, 200_000
    x = torch.full((n,), 0.5)  # grey: every changed pixel shows
    noisy = salt_and_pepper(x, p, torch.Generator().manual_seed(0))
    ones, zeros = (noisy == 1).float().mean().item(), (noisy == 0).float().mean().item()
    se = (0.15 * 0.85 / n) ** 0.5
    assert abs(ones - p / 2) < 4 * se and abs(zeros - p / 2) < 4 * se
    assert set(noisy.unique().tolist()) == {0.0, 0.5, 1.0}  # the other pixels keep their value
    assert torch.equal(salt_and_pepper(x, 0.0), x)


def spied_vae(p: float):
    """A tiny VAE on 64 inputs with the noise hook, a spy on what the encoder receives (registered after
    the noise, so it sees the noisy input) and a spy on the likelihood's target."""
    from conftest import tiny_vae

    model = tiny_vae(input_dim=64)
    InputNoise(p, seed=0).attach(model)
    seen: dict[str, list[torch.Tensor]] = {"encoder": [], "target": []}
    model.encoder.register_forward_pre_hook(lambda m, args: seen["encoder"].append(args[0].clone()))
    log_prob = model.likelihood.log_prob

    def spy(x, params):
        seen["target"].append(x.clone())
        return log_prob(x, params)

    model.likelihood.log_prob = spy
    return model, seen


def test_the_encoder_gets_noisy_input_and_the_likelihood_the_clean_batch():
    model, seen = spied_vae(0.4)
    x = (torch.rand(50, 64, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    model.train()
    state = torch.get_rng_state()
    torch.manual_seed(3)
    model.training_loss(x)
    expected = salt_and_pepper(x, 0.4, InputNoise(0.4, seed=0).generator(x.device, 0))
    assert torch.equal(seen["encoder"][-1], expected) and not torch.equal(expected, x)
    assert all(torch.equal(t, x) for t in seen["target"])  # the reconstruction target is clean
    # the noise has its own generator: the latent draws after it are those of a run without noise
    after_noisy = torch.rand(3)
    plain, _ = spied_vae(0.4)
    plain.encoder._forward_pre_hooks.clear()
    plain.train()
    torch.manual_seed(3)
    plain.training_loss(x)
    assert torch.equal(torch.rand(3), after_noisy)
    torch.set_rng_state(state)

    model.eval()  # validation, test and the image dashboards encode clean inputs
    model.training_loss(x)
    assert torch.equal(seen["encoder"][-1], x)


def test_the_noise_depends_on_the_seed_and_the_step_only():
    noise = InputNoise(0.5, seed=7)
    x = torch.zeros(10, 64)
    a = salt_and_pepper(x, 0.5, noise.generator(x.device, 4))
    assert torch.equal(a, salt_and_pepper(x, 0.5, InputNoise(0.5, seed=7).generator(x.device, 4)))
    assert not torch.equal(a, salt_and_pepper(x, 0.5, noise.generator(x.device, 5)))
    assert not torch.equal(a, salt_and_pepper(x, 0.5, InputNoise(0.5, seed=8).generator(x.device, 4)))


def test_the_data_module_hooks_the_model_only_for_p_above_0():
    from conftest import quiet_trainer, tiny_vae

    for p, hooks in ((0.0, 0), (0.25, 1)):
        dm = DigitsDataModule(input_noise=p)
        model = tiny_vae(input_dim=64)
        trainer = quiet_trainer(max_steps=1, limit_val_batches=0)
        trainer.fit(model, datamodule=dm)
        assert len(model.encoder._forward_pre_hooks) == hooks, p
        dm.setup("fit")  # a second setup does not hook twice
        assert len(model.encoder._forward_pre_hooks) == hooks, p


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, "x", True])
def test_a_bad_probability_is_a_config_error_naming_the_key(bad):
    with pytest.raises(ConfigError, match="input_noise"):
        DigitsDataModule(input_noise=bad)


def test_word_counts_refuse_input_noise():
    from vae_lab.data import NewsgroupsDataModule

    with pytest.raises(ConfigError, match="input_noise=0.1 is not allowed; expected 0"):
        NewsgroupsDataModule(input_noise=0.1)
    assert NewsgroupsDataModule(input_noise=0.0).input_noise == 0.0
