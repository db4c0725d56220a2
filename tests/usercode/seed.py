"""The seed system y = (x1^2 + 2 x2 + x3, x1 + x2^3 + x3^2, 2 x1 + x2^2 + x3^3) written in torch
several ways (tests/test_usercode.py)."""

import torch
from torch import nn


def f(x1, x2, x3):
    """A plain function returning a tuple, one tensor per output."""
    return x1**2 + 2 * x2 + x3, x1 + x2**3 + x3**2, 2 * x1 + x2**2 + x3**3


def stacked(x1, x2, x3):
    """One stacked tensor for the three scalar outputs."""
    return torch.stack(f(x1, x2, x3))


def wrong(x1, x2, x3):
    """The second output has x2**2 where the formula has x2**3."""
    return x1**2 + 2 * x2 + x3, x1 + x2**2 + x3**2, 2 * x1 + x2**2 + x3**3


def two(x1, x2, x3):
    """Returns two outputs where the formula has three."""
    return x1 + x2, x3


class Seed(nn.Module):
    """An nn.Module (made with no arguments)."""

    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale

    def forward(self, x1, x2, x3):
        return torch.stack(f(x1, x2, x3)) * self.scale


model = Seed()


def anonymous(*xs):
    """No named parameters: the variables are x1..xn."""
    return torch.stack(f(*xs))


not_callable = 3
