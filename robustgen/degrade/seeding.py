"""Where randomness comes from: (run seed, sample id) -> numpy SeedSequence, nothing global."""

from __future__ import annotations

import hashlib

import numpy as np

MAX_SEED = 2**63 - 1


def seed_sequence(seed: int, key: str) -> np.random.SeedSequence:
    """A SeedSequence derived from the run seed and a string key (sample id, degrader name)."""
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.SeedSequence([int(seed), *words])


def generator(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng(seed_sequence(seed, key))


def draw_seed(rng: np.random.Generator) -> int:
    """A fresh non-negative 63-bit seed from ``rng`` (stored in records, JSON-safe)."""
    return int(rng.integers(0, MAX_SEED, dtype=np.int64))
