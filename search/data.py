"""Demo data: scikit-learn's handwritten digits (8x8, 10 classes), upsampled; nothing is downloaded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["DigitsLoaders", "digits_loaders"]


@dataclass(frozen=True)
class DigitsLoaders:
    """Seeded, disjoint splits: ``train`` (weights), ``valid`` (architecture), ``test`` (report)."""

    train: DataLoader
    valid: DataLoader
    test: DataLoader
    resolution: int
    classes: int = 10


def digits_loaders(
    resolution: int = 32,
    batch_size: int = 64,
    fractions: tuple[float, float] = (0.6, 0.2),
    data_fraction: float = 1.0,
    seed: int = 0,
) -> DigitsLoaders:
    """Digits as 3-channel ``resolution``² images in [-1, 1], split train/valid/test.

    ``data_fraction`` keeps a class-balanced fraction of the training split
    (width transfer's dataset projection).
    """
    from sklearn.datasets import load_digits

    if not 0 < data_fraction <= 1:
        raise ValueError(f"Invalid data_fraction={data_fraction}: must be in (0, 1]")
    if resolution < 8:
        raise ValueError(f"Invalid resolution={resolution}: must be >= 8 (digits are 8x8)")
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 8, 8) / 8.0 - 1.0
    x = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    x = x.expand(-1, 3, -1, -1).contiguous()
    y = torch.tensor(y, dtype=torch.long)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_train, n_valid = int(fractions[0] * len(y)), int(fractions[1] * len(y))
    idx_train, idx_valid, idx_test = np.split(order, [n_train, n_train + n_valid])
    if data_fraction < 1:
        keep = []
        for c in range(10):  # class-balanced subset
            members = idx_train[y[idx_train].numpy() == c]
            keep.extend(members[: max(1, int(round(data_fraction * len(members))))])
        idx_train = np.array(sorted(keep))
    gen = torch.Generator().manual_seed(seed)

    def loader(idx: np.ndarray, shuffle: bool) -> DataLoader:
        t = torch.as_tensor(idx)
        return DataLoader(TensorDataset(x[t], y[t]), batch_size=batch_size, shuffle=shuffle, generator=gen)

    return DigitsLoaders(loader(idx_train, True), loader(idx_valid, True), loader(idx_test, False), resolution)
