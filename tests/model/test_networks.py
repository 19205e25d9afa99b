"""MLP options: a sparse-input first layer that computes what nn.Linear computes, and log(1 + x) inputs."""

from __future__ import annotations

import torch

from vae_lab.model.networks import MLP, SparseInputLinear


def test_sparse_input_mlp_starts_from_the_same_weights_and_computes_the_same_function():
    torch.manual_seed(0)
    dense = MLP(60, 5, hidden=[16, 16])
    torch.manual_seed(0)
    sparse = MLP(60, 5, hidden=[16, 16], sparse_input=True)
    assert isinstance(sparse[0], SparseInputLinear)
    torch.testing.assert_close(sparse[0].weight, dense[0].weight.t(), rtol=0, atol=0)
    torch.testing.assert_close(sparse[2].weight, dense[2].weight, rtol=0, atol=0)
    x = torch.poisson(torch.full((9, 60), 0.2))
    x[4] = 0.0  # an empty document
    x[8] = 0.0
    out_dense, out_sparse = dense(x), sparse(x)
    torch.testing.assert_close(out_sparse, out_dense)
    out_dense.square().sum().backward()
    out_sparse.square().sum().backward()
    torch.testing.assert_close(sparse[0].weight.grad, dense[0].weight.grad.t())
    torch.testing.assert_close(sparse[0].bias.grad, dense[0].bias.grad)
    # other shapes and inputs that need a gradient take the dense path
    torch.testing.assert_close(sparse(x.expand(3, 9, 60)), out_dense.detach().expand(3, 9, 5))
    xg = x.clone().requires_grad_()
    sparse(xg).sum().backward()
    dense_xg = x.clone().requires_grad_()
    dense(dense_xg).sum().backward()
    torch.testing.assert_close(xg.grad, dense_xg.grad)


def test_sparse_input_without_hidden_layers():
    torch.manual_seed(1)
    net = MLP(20, 3, hidden=[], sparse_input=True)
    assert isinstance(net[0], SparseInputLinear) and len(net) == 1
    x = torch.poisson(torch.full((4, 20), 0.5))
    torch.testing.assert_close(net(x), x @ net[0].weight + net[0].bias)


def test_log1p_input():
    torch.manual_seed(2)
    net = MLP(6, 2, hidden=[4], log1p_input=True)
    x = torch.poisson(torch.full((3, 6), 3.0))
    torch.testing.assert_close(net(x), torch.nn.Sequential(*net)(x.log1p()))
