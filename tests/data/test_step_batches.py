"""Several minibatches a Lightning batch (vae_lab.data.step_batches, TensorBatches.steps_per_batch): the same
minibatches in the same order with the same draws, grouped; a position that a stop inside a group moves
back; the step a per-batch hook's arguments stand for."""

from __future__ import annotations

import pytest
import torch

from vae_lab.data.loader import TensorBatches, bernoulli_transform
from vae_lab.data.step_batches import StepBatches, step_args


def loader(steps: int = 1) -> TensorBatches:
    x = torch.rand(70, 5, generator=torch.Generator().manual_seed(3))
    batches = TensorBatches(x, batch_size=8, shuffle=True, seed=4, transform=bernoulli_transform)
    batches.steps_per_batch = steps
    return batches


def epochs(batches: TensorBatches, n: int = 2) -> list[list]:
    return [list(batches) for _ in range(n)]


@pytest.mark.parametrize("steps", [2, 3, 9, 20])
def test_groups_hold_the_minibatches_of_one_step_a_batch_with_the_same_draws(steps):
    singles, groups = epochs(loader()), epochs(loader(steps))
    for single, grouped_epoch in zip(singles, groups, strict=True):
        assert all(type(group) is StepBatches for group in grouped_epoch)
        sizes = [len(group) for group in grouped_epoch]
        assert sizes == [min(steps, 9 - i) for i in range(0, 9, steps)]  # 70 rows: 9 batches of 8 (last 6)
        assert [g.used for g in grouped_epoch] == sizes
        flat = [x for group in grouped_epoch for x in group]
        assert len(flat) == len(single) == 9
        for a, b in zip(flat, single, strict=True):  # shuffled rows and binarization draws alike
            assert torch.equal(a, b)
    assert not torch.equal(singles[0][0], singles[1][0])  # the draws do change between epochs


def test_the_group_size_is_read_at_the_first_batch_not_when_iterating_starts():
    batches = loader()
    iterator = iter(batches)
    batches.steps_per_batch = 4  # as the model sets it when training starts, after Lightning's iter()
    assert [len(group) for group in iterator] == [4, 4, 1]


def test_batches_a_stop_did_not_use_are_taken_by_the_resumed_loader():
    reference = list(loader())
    batches = loader(4)
    first = next(iter(batches))
    batches.unused(1)  # the fit stopped after the group's third step
    state = batches.state_dict()
    assert state["position"] == 3
    resumed = loader(4)
    resumed.load_state_dict(state)
    rest = [x for group in resumed for x in group]
    assert len(rest) == 6
    for a, b in zip([*first[:3], *rest], reference, strict=True):
        assert torch.equal(a, b)


def test_a_hooks_batch_stands_for_the_first_step_at_the_start_and_the_last_used_at_the_end():
    group = StepBatches([torch.zeros(2), torch.ones(2), torch.full((2,), 2.0)])
    group.used = 2
    start, start_idx = step_args(group, 10, end=False)
    end, end_idx = step_args(group, 10, end=True)
    assert start is group[0] and start_idx == 10
    assert end is group[1] and end_idx == 11
    x = torch.zeros(3)
    assert step_args(x, 5, end=True) == (x, 5)
