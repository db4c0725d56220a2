"""Custom autograd Functions for y = x * sigmoid(x), correct and wrong (tests/test_usercode.py)."""

import torch


class Swish(torch.autograd.Function):
    """Correct forward and backward; no jvp (forward mode is not defined)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return grad * (s + x * s * (1 - s))


class SwishJvp(Swish):
    """Correct, with forward mode too."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ctx.x = x
        return x * torch.sigmoid(x)

    @staticmethod
    def jvp(ctx, tangent):
        s = torch.sigmoid(ctx.x)
        return tangent * (s + ctx.x * s * (1 - s))


class SwishTwice(Swish):
    """The backward is wrong by a factor of 2."""

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return 2 * grad * (s + x * s * (1 - s))


class SwishNegative(Swish):
    """The backward is wrong only for x < 0 (the x*s*(1-s) term is dropped there)."""

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return grad * torch.where(x > 0, s + x * s * (1 - s), s)


class SwishExtra(Swish):
    """Returns one gradient too many."""

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return grad * (s + x * s * (1 - s)), grad


class TanhSwish(torch.autograd.Function):
    """Computes x * tanh(x), not the formula x * sigmoid(x); its backward matches its forward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * torch.tanh(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        t = torch.tanh(x)
        return grad * (t + x * (1 - t * t))


class Raises(Swish):
    """The backward raises."""

    @staticmethod
    def backward(ctx, grad):
        raise ValueError("I forgot to write this")


class Detached(torch.autograd.Function):
    """The forward's result is marked non-differentiable: backward is never called."""

    @staticmethod
    def forward(ctx, x):
        y = x * torch.sigmoid(x)
        ctx.mark_non_differentiable(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        return grad


def detached(x):
    return (x * torch.sigmoid(x)).detach()


def noisy(x):
    """Prints on stdout, through Python and through the file descriptor."""
    import os

    print("hello from the user's code")
    os.write(1, b"raw write to fd 1\n")
    return Swish.apply(x)


def hang(x):
    """Never returns: --timeout must still stop the run."""
    while True:
        pass


def exits(x):
    """Ends the process without a word."""
    import os

    os._exit(0)


class SwishShape(Swish):
    """Returns a gradient of the wrong shape (two elements for a three-element input)."""

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return (grad * (s + x * s * (1 - s)))[:2]
