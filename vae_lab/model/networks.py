"""Networks: a plain MLP, used for encoders and decoders, and a linear layer for sparse (count) inputs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vae_lab.errors import check, positive_int

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
}


class SparseInputLinear(nn.Module):
    """y = x W + b for inputs that are mostly zeros, such as bag-of-words counts: only the nonzero entries
    are read, y_i = b + sum_{j: x_ij != 0} x_ij W_j (``torch.nn.functional.embedding_bag``).

    The same function as ``nn.Linear`` and the same initialisation (the same random draws, so a model
    built with or without it starts from the same point), but the weight is stored transposed, shape
    (in_features, out_features), so that the rows of the words in a batch are contiguous. For the 20
    Newsgroups encoder (batch 32, 1,995 words, about 1,800 nonzero counts per batch, 300 units) a
    training step of the LDA model took 5.4 instead of 7.2 ms on one CPU thread (benchmarks/bench_lda.py):
    the layer's dense forward and weight-gradient matmuls dominate the step (with two threads the two
    measured the same). Its weight gradient is dense
    (zero rows for absent words), so optimizers see exactly what ``nn.Linear`` gives them. Inputs that
    require a gradient, or are not (batch, in_features), take the dense path.
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        weight = torch.empty(out_features, in_features)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # nn.Linear's initialisation, in its layout
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(weight.t().contiguous())
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.requires_grad:
            return torch.addmm(self.bias, x.reshape(-1, self.in_features), self.weight).reshape(
                *x.shape[:-1], self.out_features
            )
        rows, cols = x.nonzero(as_tuple=True)  # row-major order: each row's entries are contiguous
        offsets = torch.searchsorted(rows, torch.arange(x.shape[0], device=x.device))
        out = F.embedding_bag(cols, self.weight, offsets, mode="sum", per_sample_weights=x[rows, cols])
        return out + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class MLP(nn.Sequential):
    """in_dim -> hidden[0] -> ... -> hidden[-1] -> out_dim, activation between layers, linear output.

    ``log1p_input``: feed log(1 + x) instead of x (for count data, it tames long documents' large counts;
    the paper's LDA encoder reads raw counts, so it is off by default).
    ``sparse_input``: the first layer reads only the nonzero inputs (:class:`SparseInputLinear`): the same
    function, faster on CPU for sparse inputs such as word counts (on a GPU, where ``nonzero`` waits for the
    device, the dense matmul is probably the better choice; not measured).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (200, 200),
        activation: str = "relu",
        log1p_input: bool = False,
        sparse_input: bool = False,
    ):
        check(activation in ACTIVATIONS, "activation", f"one of {', '.join(ACTIVATIONS)}", activation)
        sizes = [positive_int("in_dim", in_dim), *(positive_int("hidden", int(h)) for h in hidden)]
        sizes.append(positive_int("out_dim", out_dim))
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-2], sizes[1:-1], strict=True)):
            layers += [
                SparseInputLinear(a, b) if sparse_input and i == 0 else nn.Linear(a, b),
                ACTIVATIONS[activation](),
            ]
        a, b = sizes[-2:]
        layers.append(SparseInputLinear(a, b) if sparse_input and len(sizes) == 2 else nn.Linear(a, b))
        super().__init__(*layers)
        self.log1p_input = bool(log1p_input)

    def forward(self, x: Tensor) -> Tensor:
        """(..., in_dim) -> (..., out_dim). Leading dimensions (Monte Carlo samples, batch) are folded into
        one for the layers and unfolded at the end: one view each way instead of one per linear layer (and
        its backward), the same matmuls."""
        x = x.log1p() if self.log1p_input else x
        if x.dim() <= 2:
            return super().forward(x)
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)
