"""Window rows in sparse form: the closed-window store and the merges queries need.

A :class:`RowBlock` holds rows of (endpoint, window): their integer values (counters, then jobs in
queue/in progress at the window's end, worker-µs per state, most workers per state; the layout of
:mod:`jobmetrics._kernels.layout` from ``R_CNT``) and each metric's histogram as COO entries (row,
bucket index, count). Closing a window turns its dense row into such a block; snapshots,
sliding queries and totals all merge blocks by addition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["ClosedRows", "EndpointRows", "Lifetime", "RowBlock"]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class RowBlock:
    """Rows of (endpoint, window) with sparse histograms; ``hist_*[m]`` belong to metric ``m``."""

    endpoint: I32
    window: I64
    values: I64
    hist_row: tuple[I32, ...]
    hist_index: tuple[I32, ...]
    hist_count: tuple[I64, ...]

    def __len__(self) -> int:
        return int(self.endpoint.shape[0])

    @property
    def nbytes(self) -> int:
        arrays: list[npt.NDArray[np.integer]] = [self.endpoint, self.window, self.values]
        arrays += [*self.hist_row, *self.hist_index, *self.hist_count]
        return sum(int(a.nbytes) for a in arrays)

    def select(self, mask: npt.NDArray[np.bool_]) -> RowBlock:
        """The rows where ``mask`` is true (histogram entries renumbered)."""
        keep = np.flatnonzero(mask)
        new_id = np.full(len(self), -1, dtype=np.int32)
        new_id[keep] = np.arange(keep.size, dtype=np.int32)
        rows, idx, cnt = [], [], []
        for r, i, c in zip(self.hist_row, self.hist_index, self.hist_count, strict=True):
            sel = mask[r] if r.size else np.zeros(0, dtype=bool)
            rows.append(new_id[r[sel]])
            idx.append(i[sel])
            cnt.append(c[sel])
        return RowBlock(
            self.endpoint[keep], self.window[keep], self.values[keep],
            tuple(rows), tuple(idx), tuple(cnt),
        )  # fmt: skip

    @staticmethod
    def concat(blocks: list[RowBlock], n_metrics: int) -> RowBlock:
        """All rows of ``blocks`` in one block."""
        nonempty = [b for b in blocks if len(b)]
        if not nonempty and blocks:
            return blocks[-1]
        blocks = nonempty
        if not blocks:
            empty32 = np.zeros(0, dtype=np.int32)
            empty64 = np.zeros(0, dtype=np.int64)
            return RowBlock(
                empty32, empty64, np.zeros((0, 0), dtype=np.int64),
                (empty32,) * n_metrics, (empty32,) * n_metrics, (empty64,) * n_metrics,
            )  # fmt: skip
        if len(blocks) == 1:
            return blocks[0]
        offsets = np.cumsum([0] + [len(b) for b in blocks[:-1]])
        rows, idx, cnt = [], [], []
        for m in range(n_metrics):
            rows.append(
                np.concatenate([b.hist_row[m] + np.int32(o) for b, o in zip(blocks, offsets, strict=True)])
            )
            idx.append(np.concatenate([b.hist_index[m] for b in blocks]))
            cnt.append(np.concatenate([b.hist_count[m] for b in blocks]))
        return RowBlock(
            np.concatenate([b.endpoint for b in blocks]),
            np.concatenate([b.window for b in blocks]),
            np.concatenate([b.values for b in blocks]),
            tuple(rows), tuple(idx), tuple(cnt),
        )  # fmt: skip


class _Growable:
    """An append-only numpy buffer with amortised doubling."""

    def __init__(self, dtype: type[np.generic], width: int = 0) -> None:
        self.width = width
        shape = (16, width) if width else (16,)
        self._data: npt.NDArray[Any] = np.zeros(shape, dtype=dtype)
        self.size = 0

    def extend(self, values: npt.NDArray[Any]) -> None:
        need = self.size + values.shape[0]
        if need > self._data.shape[0]:
            cap = max(need, 2 * self._data.shape[0])
            grown = np.zeros((cap, *self._data.shape[1:]), dtype=self._data.dtype)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size : need] = values
        self.size = need

    @property
    def view(self) -> npt.NDArray[Any]:
        return self._data[: self.size]

    def drop_front(self, n: int) -> None:
        if n:
            self._data[: self.size - n] = self._data[n : self.size].copy()
            self.size -= n

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes)


#: Windows per pre-merged block of a sliding query (see :class:`EndpointRows`).
BLOCK = 8


class _CSR:
    """Rows of sparse histograms, one CSR per metric: ``ptr[m]`` offsets into ``index[m]``/``count[m]``."""

    def __init__(self, n_metrics: int) -> None:
        self.ptr = [_Growable(np.int64) for _ in range(n_metrics)]
        self.index = [_Growable(np.int32) for _ in range(n_metrics)]
        self.count = [_Growable(np.int64) for _ in range(n_metrics)]
        for p in self.ptr:
            p.extend(np.zeros(1, dtype=np.int64))

    def append(
        self,
        m: int,
        row: npt.NDArray[np.int64],
        idx: npt.NDArray[Any],
        cnt: npt.NDArray[np.int64],
        n_rows: int,
    ) -> None:
        """Append ``n_rows`` rows of metric ``m`` given as entries (local row, index, count) sorted by row."""
        self.index[m].extend(idx)
        self.count[m].extend(cnt)
        per_row = np.bincount(row, minlength=n_rows)
        self.ptr[m].extend(self.ptr[m].view[-1] + np.cumsum(per_row))

    def drop_front(self, n: int) -> None:
        for m in range(len(self.ptr)):
            cut = int(self.ptr[m].view[n])
            self.index[m].drop_front(cut)
            self.count[m].drop_front(cut)
            self.ptr[m].drop_front(n)
            self.ptr[m].view[:] -= cut

    @property
    def nbytes(self) -> int:
        return sum(g.nbytes for g in (*self.ptr, *self.index, *self.count))


class EndpointRows:
    """Closed rows of one endpoint in window order: their values and CSR histograms.

    For sliding queries the histograms of every aligned block of :data:`BLOCK` windows are also
    kept pre-merged once the block is closed, so a query over ``n`` windows adds about
    ``n / BLOCK + 2 * BLOCK`` sparse histograms instead of ``n``.
    """

    def __init__(self, n_values: int, n_metrics: int) -> None:
        self.window = _Growable(np.int64)
        self.values = _Growable(np.int64, n_values)
        self.hist = _CSR(n_metrics)
        self.block = _Growable(np.int64)  # block numbers (window // BLOCK) with pre-merged histograms
        self.block_hist = _CSR(n_metrics)
        self.sealed_upto = np.iinfo(np.int64).min  # blocks below this number are merged (or empty)
        self.block_floor = np.iinfo(np.int64).min  # blocks below this number were dropped

    def __len__(self) -> int:
        return self.window.size

    def append(
        self,
        window: I64,
        values: I64,
        hist: list[tuple[I64, npt.NDArray[Any], I64]],
    ) -> None:
        """Append rows (windows increasing, after those held); ``hist[m]`` holds metric ``m``'s
        entries (local row, index, count) sorted by row then index."""
        n = window.shape[0]
        self.window.extend(window)
        self.values.extend(values)
        for m, (row, idx, cnt) in enumerate(hist):
            self.hist.append(m, row, idx, cnt, n)

    def seal(self, clock: int) -> None:
        """Pre-merge every block whose windows all lie before window ``clock`` (the first query
        after a block closes pays for it; batch work that never queries never does)."""
        upto = clock // BLOCK
        if upto <= self.sealed_upto:
            return
        w = self.window.view
        a = (
            0
            if self.sealed_upto == np.iinfo(np.int64).min
            else int(np.searchsorted(w, self.sealed_upto * BLOCK))
        )
        b = int(np.searchsorted(w, upto * BLOCK))
        if b > a:
            blocks = w[a:b] // BLOCK
            uniq, starts = np.unique(blocks, return_index=True)
            bounds = np.append(starts, b - a) + a
            self.block.extend(uniq)
            for m in range(len(self.hist.ptr)):
                ptr = self.hist.ptr[m].view
                rows, idx, cnt = [], [], []
                for j in range(uniq.size):
                    lo, hi = int(ptr[bounds[j]]), int(ptr[bounds[j + 1]])
                    ii = self.hist.index[m].view[lo:hi]
                    cc = self.hist.count[m].view[lo:hi]
                    u, inv = np.unique(ii, return_inverse=True)
                    sums = np.zeros(u.size, dtype=np.int64)
                    np.add.at(sums, inv, cc)
                    rows.append(np.full(u.size, j, dtype=np.int64))
                    idx.append(u)
                    cnt.append(sums)
                self.block_hist.append(
                    m, np.concatenate(rows), np.concatenate(idx), np.concatenate(cnt), uniq.size
                )
        self.sealed_upto = upto

    def head(self, n: int, endpoint: int) -> RowBlock:
        """The first ``n`` rows as a block (a copy), labelled ``endpoint``."""
        rows, idx, cnt = [], [], []
        for m in range(len(self.hist.ptr)):
            ptr = self.hist.ptr[m].view[: n + 1]
            end = int(ptr[-1])
            rows.append(np.repeat(np.arange(n, dtype=np.int32), np.diff(ptr)))
            idx.append(self.hist.index[m].view[:end].copy())
            cnt.append(self.hist.count[m].view[:end].copy())
        return RowBlock(
            np.full(n, endpoint, dtype=np.int32),
            self.window.view[:n].copy(),
            self.values.view[:n].copy(),
            tuple(rows),
            tuple(idx),
            tuple(cnt),
        )

    def count_before(self, window: int) -> int:
        """How many rows are of windows before ``window``."""
        return int(np.searchsorted(self.window.view, window, side="left"))

    def drop_before(self, window: int) -> int:
        """Forget the rows of windows before ``window``; return how many were dropped."""
        n = self.count_before(window)
        if n == 0:
            return 0
        self.window.drop_front(n)
        self.values.drop_front(n)
        self.hist.drop_front(n)
        floor = -(-window // BLOCK)  # the block holding `window` lost rows: never use it again
        k = int(np.searchsorted(self.block.view, floor, side="left"))
        self.block.drop_front(k)
        self.block_hist.drop_front(k)
        self.block_floor = max(self.block_floor, floor)
        return n

    def to_block(self, endpoint: int) -> RowBlock:
        """Every row held, as a :class:`RowBlock` of ``endpoint``."""
        n = len(self)
        rows, idx, cnt = [], [], []
        for m in range(len(self.hist.ptr)):
            ptr = self.hist.ptr[m].view
            rows.append(np.repeat(np.arange(n, dtype=np.int32), np.diff(ptr)))
            idx.append(self.hist.index[m].view.copy())
            cnt.append(self.hist.count[m].view.copy())
        return RowBlock(
            np.full(n, endpoint, dtype=np.int32),
            self.window.view.copy(),
            self.values.view.copy(),
            tuple(rows),
            tuple(idx),
            tuple(cnt),
        )

    @property
    def nbytes(self) -> int:
        return (
            self.window.nbytes
            + self.values.nbytes
            + self.hist.nbytes
            + self.block.nbytes
            + self.block_hist.nbytes
        )


class Lifetime:
    """What the windows dropped from a :class:`ClosedRows` store held, summed per endpoint: the row
    values (counters first) and each metric's histogram counts.

    With these added, totals and histograms over everything seen stay exact (and monotonic) when
    old windows are forgotten. Values are dense, one row per endpoint code up to the highest that
    lost a window; histograms are sparse: the sorted keys ``(endpoint · n_metrics + metric) ·
    counts_len + bucket`` of the non-zero counts, and the counts (16 bytes per bucket in use).
    """

    def __init__(self, counts_len: int, n_values: int, n_metrics: int) -> None:
        self.counts_len = counts_len
        self.n_metrics = n_metrics
        self.values: I64 = np.zeros((0, n_values), dtype=np.int64)
        self.keys: I64 = np.zeros(0, dtype=np.int64)
        self.counts: I64 = np.zeros(0, dtype=np.int64)

    def _ensure(self, n: int) -> None:
        old = self.values.shape[0]
        if n > old:
            values = np.zeros((n, self.values.shape[1]), dtype=np.int64)
            values[:old] = self.values
            self.values = values

    def _key(self, endpoint: npt.NDArray[Any], metric: int, bucket: npt.NDArray[Any]) -> I64:
        key: I64 = (endpoint.astype(np.int64) * self.n_metrics + metric) * self.counts_len + bucket
        return key

    def add(self, block: RowBlock) -> None:
        """Add the rows of ``block`` (their values and histograms) to their endpoints' sums."""
        if not len(block):
            return
        eps = block.endpoint.astype(np.intp)
        self._ensure(int(eps.max()) + 1)
        np.add.at(self.values, eps, block.values)
        keys, counts = [self.keys], [self.counts]
        for m, (r, i, c) in enumerate(zip(block.hist_row, block.hist_index, block.hist_count, strict=True)):
            if r.size:
                keys.append(self._key(eps[r], m, i))
                counts.append(c)
        if len(keys) > 1:
            self._set(np.concatenate(keys), np.concatenate(counts))

    def _set(self, keys: I64, counts: I64) -> None:
        """Hold ``counts`` at ``keys`` (in any order, repeats summed)."""
        order = np.argsort(keys, kind="stable")
        keys, counts = keys[order], counts[order]
        starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if keys.size else keys
        self.keys = keys[starts]
        self.counts = np.add.reduceat(counts, starts) if keys.size else counts

    def values_of(self, endpoint: int) -> I64:
        """Summed row values of ``endpoint`` (zeros if it never lost a window)."""
        if endpoint < self.values.shape[0]:
            row: I64 = self.values[endpoint]
            return row
        return np.zeros(self.values.shape[1], dtype=np.int64)

    def hist_of(self, endpoint: int, metric: int) -> I64 | None:
        """Dense summed counts of ``endpoint``'s ``metric`` (None if it has none)."""
        lo = (endpoint * self.n_metrics + metric) * self.counts_len
        a, b = np.searchsorted(self.keys, [lo, lo + self.counts_len])
        if a == b:
            return None
        out = np.zeros(self.counts_len, dtype=np.int64)
        out[self.keys[a:b] - lo] = self.counts[a:b]
        return out

    def state(self) -> dict[str, I64]:
        """The sums as arrays: values dense, histograms as rows (endpoint, metric, bucket, count)."""
        k = self.keys
        per_endpoint = self.n_metrics * self.counts_len
        rows = [k // per_endpoint, k // self.counts_len % self.n_metrics, k % self.counts_len, self.counts]
        return {"lifetime.values": self.values.copy(), "lifetime.hist": np.stack(rows).astype(np.int64)}

    def load_state(self, values: I64, hist: I64) -> None:
        """Put back what :meth:`state` returned (ValueError if it does not fit)."""
        n_values = self.values.shape[1]
        if values.ndim != 2 or values.shape[1] != n_values:
            raise ValueError(f"lifetime values have shape {values.shape}, expected (n, {n_values})")
        if hist.ndim != 2 or hist.shape[0] != 4:
            raise ValueError(f"lifetime histograms have shape {hist.shape}, expected (4, n)")
        e, m, b, c = hist
        if e.size and (
            e.min() < 0 or e.max() >= values.shape[0] or m.min() < 0 or m.max() >= self.n_metrics
            or b.min() < 0 or b.max() >= self.counts_len
        ):  # fmt: skip
            raise ValueError("lifetime histograms point outside their endpoints, metrics or buckets")
        self.values = values.copy()
        self._set(self._key(e, 0, b) + m * self.counts_len, c.copy())

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes + self.keys.nbytes + self.counts.nbytes)


class ClosedRows:
    """Closed window rows, filed per endpoint in window order with CSR histograms, so a sliding
    query over an endpoint's last windows reads one contiguous range.

    Closing windows only queues their rows (one cheap append per close, whatever the number of
    endpoints); they are filed per endpoint in one pass when a per-endpoint query needs them. Batch
    work that only snapshots never pays for filing.
    """

    def __init__(self, counts_len: int, n_values: int, n_metrics: int = 3) -> None:
        self.counts_len = counts_len
        self.n_values = n_values
        self.n_metrics = n_metrics
        self.endpoints: dict[int, EndpointRows] = {}
        self._queued: list[RowBlock] = []
        self.lifetime = Lifetime(counts_len, n_values, n_metrics)

    def append(self, block: RowBlock) -> None:
        """Add rows (windows later than any this store holds for their endpoints)."""
        if len(block):
            self._queued.append(block)
            if len(self._queued) > 64:
                self._queued = [RowBlock.concat(self._queued, self.n_metrics)]

    def store(self, endpoint: int) -> EndpointRows | None:
        """The filed rows of ``endpoint`` (filing what is queued first)."""
        if self._queued:
            self._file(RowBlock.concat(self._queued, self.n_metrics))
            self._queued = []
        return self.endpoints.get(endpoint)

    def _file(self, block: RowBlock) -> None:
        order = np.lexsort((block.window, block.endpoint))
        rank = np.empty(len(block), dtype=np.int64)
        rank[order] = np.arange(len(block))
        eps = block.endpoint[order]
        cuts = np.flatnonzero(np.diff(eps)) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [len(block)]])
        # each metric's entries in (endpoint, window) order, so each endpoint's are one slice
        per_metric = []
        for m in range(self.n_metrics):
            r = rank[block.hist_row[m]]
            o = np.argsort(r, kind="stable")
            r = r[o]
            per_metric.append((r, block.hist_index[m][o], block.hist_count[m][o], np.searchsorted(r, starts)))
        window, values = block.window[order], block.values[order]
        for k, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            e = int(eps[a])
            store = self.endpoints.get(e)
            if store is None:
                store = self.endpoints[e] = EndpointRows(self.n_values, self.n_metrics)
            hist = []
            for r, idx, cnt, bounds in per_metric:
                lo = int(bounds[k])
                hi = int(bounds[k + 1]) if k + 1 < len(bounds) else r.shape[0]
                hist.append((r[lo:hi] - a, idx[lo:hi], cnt[lo:hi]))
            store.append(window[a:b], values[a:b], hist)

    def all(self) -> RowBlock:
        """Every closed row as one block."""
        blocks = [store.to_block(e) for e, store in sorted(self.endpoints.items()) if len(store)]
        return RowBlock.concat([*blocks, *self._queued], self.n_metrics)

    def drop_before(self, window: int) -> int:
        """Forget rows of windows before ``window``, adding them to :attr:`lifetime`; return how
        many were dropped."""
        dropped = 0
        for e, store in self.endpoints.items():
            n = store.count_before(window)
            if n:
                self.lifetime.add(store.head(n, e))
                dropped += store.drop_before(window)
        kept = []
        for block in self._queued:
            keep = block.window >= window
            gone = int((~keep).sum())
            dropped += gone
            if gone:
                self.lifetime.add(block.select(~keep))
            if keep.all():
                kept.append(block)
            elif keep.any():
                kept.append(block.select(keep))
        self._queued = kept
        return dropped

    def __len__(self) -> int:
        return sum(len(s) for s in self.endpoints.values()) + sum(len(b) for b in self._queued)

    @property
    def nbytes(self) -> int:
        """Bytes of the rows held (the :attr:`lifetime` sums not included)."""
        return sum(s.nbytes for s in self.endpoints.values()) + sum(b.nbytes for b in self._queued)
