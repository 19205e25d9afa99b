"""Seeds derived from other seeds, for private random streams (data binarization, probes, dashboards)."""

from __future__ import annotations

import numpy as np


def derived_seed(*words: int) -> int:
    """A 63-bit seed derived from integers with NumPy's SeedSequence (stable across versions): the same
    words give the same seed on every machine, different words independent-looking seeds."""
    return int(
        np.random.SeedSequence([int(w) & 0xFFFFFFFF for w in words]).generate_state(2, np.uint64)[0]
        >> np.uint64(1)
    )
