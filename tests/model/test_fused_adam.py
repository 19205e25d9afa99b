"""vae_lab.model.fused_adam: fused Adam's step without torch's per-step Python is torch's step bit for bit
(parameters, moments, step counts), and it declines wherever torch's step does something more."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from vae_lab.model import fused_adam


def model(dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).to(dtype)


def adam(net: nn.Module, **kwargs) -> torch.optim.Adam:
    first, second = list(net[0].parameters()), list(net[2].parameters())
    groups = [{"params": first}, {"params": second, "weight_decay": 0.1, "lr": 3e-3}]
    return torch.optim.Adam(groups, **{"lr": 1e-2, "fused": True, **kwargs})


def backward(net: nn.Module, step: int, dtype: torch.dtype, frozen: bool) -> None:
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(step), dtype=dtype)
    (net(x) ** 2).sum().backward()
    if frozen:  # a frozen parameter: no gradient, as the VAE's prior burn-in leaves it
        net[2].bias.grad = None


def train(fast: bool, dtype: torch.dtype, steps: int = 9, **kwargs) -> tuple:
    net = model(dtype)
    opt = adam(net, **kwargs)
    taken = 0
    for i in range(steps):
        if fast:
            fused_adam.zero_grad(opt)
        else:
            opt.zero_grad(set_to_none=True)
        backward(net, i, dtype, frozen=i < 4)  # the bias's state appears at step 4, through torch
        if i == 6:
            opt.param_groups[0]["lr"] = 5e-3  # a schedule's change is read at the next step
        if fast and fused_adam.step(opt):
            taken += 1
        else:
            opt.step()
    return net, opt, taken


def assert_same(a: tuple, b: tuple) -> None:
    (net_a, opt_a, _), (net_b, opt_b, _) = a, b
    for (name, x), y in zip(net_a.state_dict().items(), net_b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    state_a, state_b = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
    assert state_a.keys() == state_b.keys()
    for key, entry in state_a.items():
        for name, value in entry.items():
            assert torch.equal(value, state_b[key][name]), (key, name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("decoupled", [False, True])
def test_the_step_is_torchs_bit_for_bit(dtype, decoupled):
    fast = train(True, dtype, decoupled_weight_decay=decoupled)
    slow = train(False, dtype, decoupled_weight_decay=decoupled)
    assert_same(fast, slow)
    # torch took the first step (no state yet) and step 4 (the bias's first gradient); the rest were direct
    assert fast[2] == 7
    untrained = model(dtype)
    assert not torch.equal(fast[0][0].weight, untrained[0].weight)
    steps = {int(s["step"]) for s in fast[1].state.values()}
    assert steps == {9, 5}  # the frozen bias stepped only from step 4 on


def test_zero_grad_sets_every_gradient_to_none():
    net = model(torch.float32)
    opt = adam(net)
    backward(net, 0, torch.float32, frozen=False)
    fused_adam.zero_grad(opt)
    assert all(p.grad is None for p in net.parameters())


def ready(**kwargs) -> tuple[nn.Module, torch.optim.Adam]:
    """An optimizer past its first step (states exist) with fresh gradients."""
    net = model(torch.float32)
    opt = kwargs.pop("optimizer", None) or adam(net, **kwargs)
    backward(net, 0, torch.float32, frozen=False)
    opt.step()
    backward(net, 1, torch.float32, frozen=False)
    return net, opt


@pytest.mark.parametrize(
    "kwargs",
    [{"amsgrad": True}, {"maximize": True}, {"fused": False}, {"foreach": True, "fused": False}],
    ids=["amsgrad", "maximize", "unfused", "foreach"],
)
def test_it_declines_the_settings_torch_handles_otherwise(kwargs):
    net, opt = ready(**kwargs)
    before = [p.detach().clone() for p in net.parameters()]
    assert not fused_adam.step(opt)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))  # nothing done


def test_it_declines_hooks_a_patched_step_a_tensor_lr_a_subclass_and_a_scaler():
    net, opt = ready()
    assert fused_adam.step(opt)  # the reference case is taken

    handle = opt.register_step_pre_hook(lambda *args: None)
    assert not fused_adam.step(opt)
    handle.remove()
    handle = register_optimizer_step_post_hook(lambda *args: None)
    assert not fused_adam.step(opt)
    handle.remove()

    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=2)  # patches opt.step to count its calls
    assert not fused_adam.step(opt)
    del scheduler

    _, opt = ready()
    opt.param_groups[1]["lr"] = torch.tensor(1e-3)
    assert not fused_adam.step(opt)

    _, opt = ready()
    opt.grad_scale = torch.tensor(1.0)
    assert not fused_adam.step(opt)

    net = model(torch.float32)
    _, adamw = ready(optimizer=torch.optim.AdamW(net.parameters(), fused=True))
    assert not fused_adam.step(adamw)


def test_it_declines_a_group_of_mixed_dtypes_and_a_parameter_without_state():
    net = model(torch.float32)
    net[2].double()
    opt = torch.optim.Adam(net.parameters(), fused=True)
    for i in range(2):
        opt.zero_grad()
        out = net[2](net[1](net[0](torch.randn(4, 5))).double())
        out.sum().backward()
        if i == 0:
            opt.step()
    assert not fused_adam.step(opt)  # torch splits such a group by dtype; the shortcut does not

    net = model(torch.float32)
    opt = adam(net)
    backward(net, 0, torch.float32, frozen=False)
    assert not fused_adam.step(opt)  # no state yet: torch's step creates it
    opt.step()
    assert all(len(opt.state[p]) == 3 for p in net.parameters())


def test_zero_grad_defers_to_an_optimizer_that_overrides_it():
    class Counting(torch.optim.Adam):
        calls = 0

        def zero_grad(self, set_to_none: bool = True) -> None:
            Counting.calls += 1
            super().zero_grad(set_to_none)

    net = model(torch.float32)
    opt = Counting(net.parameters(), fused=True)
    backward(net, 0, torch.float32, frozen=False)
    fused_adam.zero_grad(opt)
    assert Counting.calls == 1 and all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("scale", [1e-30, 1e-3, 1e30], ids=["tiny", "moderate", "huge"])
def test_the_step_is_torchs_bit_for_bit_in_float32_at_the_ends_of_the_gradients_range(scale):
    """Gradients near float32's smallest normal squares (Adam's second moment underflows) and near its
    largest (it overflows to inf); a constant added to the objective changes no gradient and no bit."""
    results = []
    for fast in (True, False):
        net = model(torch.float32)
        opt = adam(net)
        taken = 0
        for i in range(5):
            fused_adam.zero_grad(opt) if fast else opt.zero_grad(set_to_none=True)
            x = torch.randn(4, 5, generator=torch.Generator().manual_seed(i))
            (scale * net(x).sum() + 1e6).backward()
            if fast and fused_adam.step(opt):
                taken += 1
            else:
                opt.step()
        results.append((net, opt, taken))
    assert_same(*results)
    assert results[0][2] == 4  # the first step through torch, the rest direct
