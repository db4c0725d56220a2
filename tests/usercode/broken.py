"""A file that fails when imported."""

import torch

VALUE = torch.tensor(1.0)
raise RuntimeError("this file is broken on purpose")
