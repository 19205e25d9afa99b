"""Fused Adam's step and ``zero_grad`` without torch's per-step Python, where that Python does nothing.

Adam's fused step is one kernel over all parameters (``torch._fused_adam_``, after ``torch._foreach_add_``
of the step counts), but ``optimizer.step()`` reaches it through four Python layers: the profiler label and
the step hooks (``Optimizer.profile_hook_step``), the grad-mode switch with two dynamo graph breaks
(``_use_grad_for_differentiable``), ``Adam._init_group``'s per-parameter checks and lists, and ``adam`` /
``_fused_adam``'s dispatch and regrouping by device and dtype. ``zero_grad`` adds a profiler label. On the
MNIST VAE (12 parameter tensors, one CPU core) they took about 125 us a step, 4% of the step; the kernel is
the same work either way.

:func:`step` calls the same two ops on the same tensor lists, in the same order, under ``no_grad``, as
``Adam.step`` does in exactly this case, and nowhere else (it returns ``False`` and does nothing, and the
caller takes ``optimizer.step()``):

* a plain ``torch.optim.Adam`` (not a subclass) with ``fused=True`` in every group, no ``amsgrad``,
  ``maximize``, ``capturable`` or ``differentiable``, a float ``lr`` and float betas;
* no step hooks (the optimizer's or torch's global ones), no ``step`` patched onto the instance (an LR
  scheduler patches it to count calls), no gradient scaler's ``grad_scale`` / ``found_inf``;
* every parameter with a gradient already has its state (the first step, or a parameter's first gradient
  after a freeze, goes through torch, which creates the state), a dense real gradient, and the device and
  dtype of the group's other parameters (torch would split the group by them).

Parameters without a gradient are skipped, as torch skips them (the prior's freeze relies on it). The
optimizer's state is torch's own, so checkpoints are unchanged. ``tests/model/test_fused_adam.py`` checks
parameters and states bit for bit against ``optimizer.step()`` over steps in float32 and float64, with
weight decay (Adam's and AdamW's), several groups, frozen parameters and a changing ``lr``, and each
condition that sends the step back to torch.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim import Adam
from torch.optim import optimizer as torch_optimizer

__all__ = ["step", "zero_grad"]

_OFF = ("amsgrad", "maximize", "capturable", "differentiable")
_Lists = tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor], list[Tensor]]


def _plain(optimizer: torch.optim.Optimizer) -> bool:
    return (
        type(optimizer) is Adam
        and "step" not in vars(optimizer)
        and not optimizer._optimizer_step_pre_hooks
        and not optimizer._optimizer_step_post_hooks
        and not torch_optimizer._global_optimizer_pre_hooks
        and not torch_optimizer._global_optimizer_post_hooks
        and getattr(optimizer, "grad_scale", None) is None
        and getattr(optimizer, "found_inf", None) is None
    )


def _group_lists(optimizer: Adam, group: dict) -> _Lists | None:
    """The group's parameters with a gradient, their gradients, moments and step counts; None where torch's
    own step must run."""
    if not group["fused"] or any(group[key] for key in _OFF):
        return None
    if isinstance(group["lr"], Tensor) or any(isinstance(b, Tensor) for b in group["betas"]):
        return None
    params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
    kind = None
    for p in group["params"]:
        grad = p.grad
        if grad is None:
            continue
        state = optimizer.state.get(p)
        if not state or grad.is_sparse or p.is_complex():
            return None
        if kind is None:
            kind = (p.device, p.dtype)
        elif (p.device, p.dtype) != kind:
            return None
        params.append(p)
        grads.append(grad)
        exp_avgs.append(state["exp_avg"])
        exp_avg_sqs.append(state["exp_avg_sq"])
        steps.append(state["step"])
    return params, grads, exp_avgs, exp_avg_sqs, steps


def step(optimizer: torch.optim.Optimizer) -> bool:
    """Take ``optimizer``'s step as ``Adam.step`` takes it in the case above; ``False`` (nothing done)
    elsewhere, where the caller takes ``optimizer.step()``."""
    if not _plain(optimizer):
        return False
    lists = [_group_lists(optimizer, group) for group in optimizer.param_groups]  # all checked first
    if any(entry is None for entry in lists):
        return False
    with torch.no_grad():
        for group, (params, grads, exp_avgs, exp_avg_sqs, steps) in zip(
            optimizer.param_groups, lists, strict=True
        ):
            if not params:
                continue
            beta1, beta2 = group["betas"]
            kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
            torch._foreach_add_(steps, 1)
            kernel(
                params,
                grads,
                exp_avgs,
                exp_avg_sqs,
                [],
                steps,
                amsgrad=False,
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=False,
                grad_scale=None,
                found_inf=None,
            )
    return True


def zero_grad(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.zero_grad(set_to_none=True)``: every gradient set to None, without the profiler label,
    where the optimizer keeps torch's ``zero_grad``; otherwise that call."""
    if type(optimizer).zero_grad is not torch.optim.Optimizer.zero_grad or "zero_grad" in vars(optimizer):
        optimizer.zero_grad(set_to_none=True)
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None
