"""Open-addressing hash tables in numpy matrices: linear probing, Fibonacci hashing, backward-shift
deletion (no tombstones). Column 0 of a table holds the key; 0 marks an empty slot."""

from __future__ import annotations

import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros

from ._jit import kernel

__all__ = [
    "entity_key",
    "home_slot",
    "table_bits",
    "table_delete",
    "table_find",
    "table_insert_row",
    "table_rehash",
]

GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@kernel
def table_bits(capacity):
    """log2 of a power-of-two capacity."""
    return 63 - leading_zeros(np.int64(capacity))


@kernel
def entity_key(key, endpoint):
    """Table key of (endpoint, id key): a job or worker is identified by both; never 0."""
    k = np.uint64(key) ^ (np.uint64(endpoint + 1) * np.uint64(0xD6E8FEB86659FD93))
    k ^= k >> np.uint64(32)
    out = np.int64(k)
    if out == 0:
        out = np.int64(0x5BD1E995)
    return out


@kernel
def home_slot(key, bits):
    return np.int64((np.uint64(key) * GOLDEN) >> np.uint64(64 - bits))


@kernel
def table_find(table, key, bits):
    """Slot holding ``key``, or the empty slot where it would go."""
    mask = table.shape[0] - 1
    s = home_slot(key, bits)
    while True:
        k = table[s, 0]
        if k == key or k == 0:
            return s
        s = (s + 1) & mask


@kernel
def table_insert_row(table, row):
    """Insert a whole record (``row[0]`` is the key) into a table without it."""
    bits = table_bits(table.shape[0])
    s = table_find(table, row[0], bits)
    table[s, :] = row


@kernel
def table_delete(table, s, bits):
    """Empty slot ``s``, shifting later entries of its probe chain back into the hole."""
    mask = table.shape[0] - 1
    hole = s
    j = s
    while True:
        j = (j + 1) & mask
        k = table[j, 0]
        if k == 0:
            break
        home = home_slot(k, bits)
        # k may move into the hole unless its home lies cyclically in (hole, j]
        if hole <= j:
            stays = hole < home <= j
        else:
            stays = home > hole or home <= j
        if not stays:
            table[hole, :] = table[j, :]
            hole = j
    table[hole, :] = 0


@kernel
def table_rehash(old, new):
    """Move every entry of ``old`` into the empty power-of-two table ``new`` (any larger size).

    One pass over ``old`` in slot order, the probe inlined: keys are unique, so an entry goes into
    the first empty slot from its home, and fields are copied one by one (no row views). With
    Fibonacci hashing an entry's home in ``new`` is its home in ``old`` followed by more bits, so
    entries arrive in almost increasing home order and the writes sweep forward through ``new``.
    The result is the table :func:`table_insert_row` would build inserting in the same order.
    """
    width = old.shape[1]
    mask = new.shape[0] - 1
    shift = np.uint64(64 - table_bits(new.shape[0]))
    for s in range(old.shape[0]):
        key = old[s, 0]
        if key == 0:
            continue
        h = np.int64((np.uint64(key) * GOLDEN) >> shift)
        while new[h, 0] != 0:
            h = (h + 1) & mask
        for c in range(width):
            new[h, c] = old[s, c]
