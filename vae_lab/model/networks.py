"""Networks: a plain MLP, used for encoders and decoders."""

from __future__ import annotations

from collections.abc import Sequence

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


class MLP(nn.Sequential):
    """in_dim -> hidden[0] -> ... -> hidden[-1] -> out_dim, activation between layers, linear output."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int] = (200, 200), activation: str = "relu"):
        check(activation in ACTIVATIONS, "activation", f"one of {', '.join(ACTIVATIONS)}", activation)
        sizes = [positive_int("in_dim", in_dim), *(positive_int("hidden", int(h)) for h in hidden)]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(sizes[-1], positive_int("out_dim", out_dim)))
        super().__init__(*layers)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102 - typed for readers
        return super().forward(x)
