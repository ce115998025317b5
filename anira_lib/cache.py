"""Allocation-aware KV cache (paper §3.2.4; specs/paper.md, "the contract for this library").

Layer slots: prelude 0..P-1, recurrent iteration i (1-based) P+i-1, coda P+D..P+D+C-1. A token t
with exit depth d_t leaves

- one key/value in every prelude and coda slot,
- one key/value for each recurrent iteration 1..d_t (computed from h_{i-1}(t), its state entering i),
- one frozen key/value computed from its final state h_{d_t}(t) if d_t < D: Eq. 5 makes every deeper
  iteration see exactly that one (for the shared core the projections are the same at every iteration).

So the cache holds P + C + d_t + [d_t < D] entries per token instead of P + D + C:
bytes held / fixed-depth bytes ≈ (P + C + d̄ + f) / (P + D + C), f = share of tokens with d_t < D.

Storage is a dense pool of entries, (entries, kv_heads, head_dim), shared by the rows of the batch
(a pool stores only the tokens that ran it, so rows are never padded to each other), with each
entry's row and sequence index beside it. Each prelude and coda slot has its own pool; the D
recurrent iterations share one, and a small int table per iteration ("view") lists, for each row,
the entries that iteration attends to: its own entries plus the frozen entries of tokens that
exited before it. A frozen entry is stored once and listed in the views of iterations d_t+1..D, so
one gather gives a layer call exactly one key per cached token. Attention is order-free given the
mask, which is built from the gathered entries' sequence indices.

The model drives the cache: before each layer call it calls `begin(slot, rows, query_seq, valid)`
(which rows run, which tokens are queries) and passes the returned mask to the transformers layer;
the layer's attention then calls `update(k, v, layer_idx)`, which stores the queries' keys/values and
returns the keys/values to attend to.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

GROWTH = 32      # capacity grows by what is needed, capacity / GROWTH or MIN_GROWTH entries, whichever
MIN_GROWTH = 8   # is more: held bytes stay within ~3% (+8 entries per pool) of used


class PackedKVLayer(CacheLayerMixin):
    """A pool of entries shared by all rows, so no row is padded to another's length:
    keys/values (capacity, kv_heads, head_dim); row, seq (sequence index), lo and hi (the range of
    views that list the entry) of shape (capacity,); the first `n` entries are in use.
    For each of `views` views, an int table `index` (views, B, width) lists each row's pool positions
    in pool order, `counts` (views, B) of them. Prelude and coda slots have one view."""

    is_compileable = False
    is_croppable = True
    is_sliding = False

    def __init__(self, views: int = 1):
        super().__init__()
        self.views = views
        self.row = self.seq = self.lo = self.hi = self.index = self.counts = None
        self.n = 0
        self.width = 0  # an upper bound of counts.max(), kept on the host so appends need no sync

    def lazy_initialization(self, key_states, value_states):
        B, h, _, hd = key_states.shape
        self.dtype, self.device = key_states.dtype, key_states.device
        self.keys = key_states.new_zeros(0, h, hd)
        self.values = value_states.new_zeros(0, h, hd)
        self.row, self.seq, self.lo, self.hi = (torch.zeros(0, dtype=torch.long, device=self.device) for _ in range(4))
        self.index = torch.zeros(self.views, B, 0, dtype=torch.long, device=self.device)
        self.counts = torch.zeros(self.views, B, dtype=torch.long, device=self.device)
        self.view = torch.arange(self.views, device=self.device)
        self.n = self.width = 0
        self.is_initialized = True

    def _ensure_capacity(self, needed: int, width: int):
        cap = self.keys.shape[0]
        if needed > cap:
            grow = max(needed - cap, cap // GROWTH, MIN_GROWTH)
            self.keys = torch.cat([self.keys, self.keys.new_zeros(grow, *self.keys.shape[1:])])
            self.values = torch.cat([self.values, self.values.new_zeros(grow, *self.values.shape[1:])])
            self.row, self.seq, self.lo, self.hi = (torch.cat([t, t.new_zeros(grow)])
                                                    for t in (self.row, self.seq, self.lo, self.hi))
        if width > self.index.shape[2]:
            grow = max(width - self.index.shape[2], 64)  # the int tables are small: grow them in steps
            self.index = torch.cat([self.index, self.index.new_zeros(*self.index.shape[:2], grow)], dim=2)

    def append(self, rows, keys, values, seq, valid, lo=0, hi=0):
        """Store the valid entries: keys/values (B', h, a, hd); seq, valid (B', a); rows (B',). Each is
        listed in views lo..hi (ints, or (B', a) tensors: one range per entry). They take pool
        positions n, n+1, ... in row-major order of `valid`, and each view lists them in that order."""
        a = valid.shape[1]
        self.width += a
        if a == 1 and bool(valid.all()):  # decoding: one entry per row, no selection needed
            self._append_one_per_row(rows, keys[:, :, 0], values[:, :, 0], seq[:, 0], lo, hi)
            return
        b, j = valid.nonzero(as_tuple=True)
        m = b.numel()
        self._ensure_capacity(self.n + m, self.width)
        end = self.n + m
        self.keys[self.n:end] = keys.transpose(1, 2)[b, j].to(self.keys.dtype)
        self.values[self.n:end] = values.transpose(1, 2)[b, j].to(self.values.dtype)
        self.row[self.n:end] = rows[b]
        self.seq[self.n:end] = seq[b, j]
        self.lo[self.n:end] = lo if isinstance(lo, int) else lo[b, j]
        self.hi[self.n:end] = hi if isinstance(hi, int) else hi[b, j]
        position = torch.zeros_like(seq)
        position[b, j] = torch.arange(self.n, end, device=self.device)
        view = self.view.view(-1, 1, 1)
        listed = valid & (view >= lo) & (view <= hi)  # (views, B', a)
        before = self.counts[:, rows]  # (views, B')
        column = before.unsqueeze(-1) + listed.long().cumsum(-1) - 1
        v, lb, lj = listed.nonzero(as_tuple=True)
        self.index[v, rows[lb], column[v, lb, lj]] = position[lb, lj]
        self.counts[:, rows] = before + listed.sum(-1)
        self.n = end

    def _append_one_per_row(self, rows, keys, values, seq, lo, hi):
        """`append` for one valid entry per row: keys/values (B', h, hd); seq (B',); lo, hi ints or (B', 1)."""
        m = rows.numel()
        self._ensure_capacity(self.n + m, self.width)
        end = self.n + m
        self.keys[self.n:end], self.values[self.n:end] = keys, values
        self.row[self.n:end], self.seq[self.n:end] = rows, seq
        position = torch.arange(self.n, end, device=self.device)
        if isinstance(lo, int) and lo == hi:  # a layer call's own entries: one view
            self.lo[self.n:end], self.hi[self.n:end] = lo, hi
            column = self.counts[lo, rows]
            self.index[lo, rows, column] = position
            self.counts[lo, rows] = column + 1
        else:  # frozen entries: views lo..hi, lo per token
            lo, hi = (x if isinstance(x, int) else x[:, 0] for x in (lo, hi))
            self.lo[self.n:end], self.hi[self.n:end] = lo, hi
            view = self.view.unsqueeze(1)
            listed = (view >= lo) & (view <= hi)  # (views, B') (or (views, 1))
            before = self.counts[:, rows]
            # Every view gets the position in its first free column; only the views that list the
            # entry count it, so elsewhere it stays beyond `counts` and the next append overwrites it.
            self.index[view, rows, before] = position
            self.counts[:, rows] = before + listed
        self.n = end

    def layout(self, view: int, rows, every_row: bool = False):
        """Pool positions of each row's entries in `view`: idx (B', L) (padding points at entry 0)
        and ok (B', L). every_row: `rows` is arange(B), so the table is sliced instead of gathered."""
        counts = self.counts[view] if every_row else self.counts[view, rows]
        length = int(counts.max()) if counts.numel() else 0
        idx = self.index[view, :, :length] if every_row else self.index[view, rows, :length]
        ok = torch.arange(length, device=rows.device).unsqueeze(0) < counts.unsqueeze(1)
        return idx.masked_fill(~ok, 0), ok

    def gather(self, idx):
        """keys, values (B', h, L, hd) at pool positions idx (B', L)."""
        return self.keys[idx].transpose(1, 2), self.values[idx].transpose(1, 2)

    def _rebuild(self, positions, new_rows, batch: int):
        """Keep only the entries at `positions` (pool order), owned by `new_rows`; rebuild the views."""
        self.keys, self.values = self.keys[positions], self.values[positions]
        self.seq, self.lo, self.hi = self.seq[positions], self.lo[positions], self.hi[positions]
        self.row = new_rows
        self.n = positions.numel()
        view = self.view.view(-1, 1, 1)
        mine = self.row.unsqueeze(0) == torch.arange(batch, device=self.device).unsqueeze(1)  # (B, n)
        listed = mine & (self.lo <= view) & (view <= self.hi)  # (views, B, n)
        self.counts = listed.sum(-1)
        width = self.width = int(self.counts.max()) if batch and self.n else 0
        self.index = torch.sort((~listed).to(torch.int8), dim=-1, stable=True).indices[..., :width]

    def select_rows(self, mapping):
        """New row r holds a copy of old row mapping[r] (reorder, select, repeat)."""
        if self.is_initialized:
            mapping = mapping.to(self.device)
            new_row, position = (self.row[: self.n].unsqueeze(0) == mapping.unsqueeze(1)).nonzero(as_tuple=True)
            self._rebuild(position, new_row, mapping.numel())

    def reorder_cache(self, beam_idx):
        self.select_rows(beam_idx)

    def batch_select_indices(self, indices):
        self.select_rows(indices)

    def batch_repeat_interleave(self, repeats: int):
        if self.is_initialized:
            batch = self.counts.shape[1]
            self.select_rows(torch.arange(batch, device=self.device).repeat_interleave(repeats))

    def crop(self, keep_seq: int):
        """Forget the entries of sequence index >= keep_seq."""
        if self.is_initialized:
            keep = (self.seq[: self.n] < keep_seq).nonzero().flatten()
            self._rebuild(keep, self.row[keep], self.counts.shape[1])

    # -- the generic Cache layer protocol -------------------------------------------------
    def update(self, key_states, value_states, *args, **kwargs):
        raise RuntimeError("AllocationCache slots are written through AllocationCache.update, driven by AniraModel.")

    def get_seq_length(self) -> int:
        return self.n

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.n + query_length, 0

    def get_max_length(self) -> int:
        return -1

    def reset(self):
        self.is_initialized = False
        self.keys = self.values = self.row = self.seq = self.lo = self.hi = self.index = self.counts = None
        self.n = self.width = 0

    def bytes_held(self) -> int:
        if not self.is_initialized:
            return 0
        return self.keys.numel() * self.keys.element_size() + self.values.numel() * self.values.element_size()

    def entries(self) -> int:
        return self.n if self.is_initialized else 0


class AllocationCache(Cache):
    """KV cache for `AniraForCausalLM` that holds only what each token's exit depth requires.

    Built for one model configuration (P, D, C, kv heads, head dim). `layers`: P prelude pools, the
    recurrent pool (D views), C coda pools. `exit_depths` (B, S) keeps every cached token's exit
    depth (0 for padding), in step through reorder/select/repeat/crop."""

    def __init__(self, config):
        self.prelude_layers, self.max_depth, self.coda_layers = (config.prelude_layers, config.max_depth,
                                                                  config.coda_layers)
        self.n_slots = self.prelude_layers + self.max_depth + self.coda_layers
        pools = ([PackedKVLayer() for _ in range(self.prelude_layers)] + [PackedKVLayer(views=self.max_depth)]
                 + [PackedKVLayer() for _ in range(self.coda_layers)])
        super().__init__(layers=pools)
        self.signature = cache_signature(config)
        self.exit_depths: torch.Tensor | None = None
        self.seen = 0
        self.block_calls = 0  # (token, recurrent iteration) pairs actually computed
        self._armed = None

    @property
    def recurrent(self) -> PackedKVLayer:
        """The pool shared by the D recurrent iterations (view i-1 = iteration i)."""
        return self.layers[self.prelude_layers]

    def locate(self, slot: int) -> tuple[PackedKVLayer, int]:
        """Layer slot (0..P+D+C-1) -> (pool, view)."""
        P, D = self.prelude_layers, self.max_depth
        if not 0 <= slot < self.n_slots:
            raise IndexError(f"slot {slot} is outside 0..{self.n_slots - 1} (P + D + C slots)")
        if slot < P:
            return self.layers[slot], 0
        if slot < P + D:
            return self.recurrent, slot - P
        return self.layers[slot - D + 1], 0

    # -- driving a layer call -------------------------------------------------------------
    def begin(self, slot: int, rows, query_seq, query_valid, dtype) -> torch.Tensor | None:
        """Arm `slot` for one layer call by `rows` (B',) with queries at sequence indices query_seq
        (B', a) (query_valid marks real ones). Returns the additive attention mask (B', 1, a, keys)
        over the keys `update` will return: the entries the slot's view lists for these rows (for a
        recurrent iteration: its own and the frozen ones of earlier exits), then the queries' own.
        None when every query may see every key (one query per row and no padding among the keys)."""
        layer, view = self.locate(slot)
        if not layer.is_initialized:
            raise RuntimeError("call AllocationCache.initialise(...) before the first layer call")
        every_row = rows.numel() == layer.counts.shape[1]  # rows come sorted and unique from the model
        idx, ok = layer.layout(view, rows, every_row)
        new = layer.n + query_valid.reshape(-1).long().cumsum(0).view_as(query_valid) - 1
        one_query = query_seq.shape[1] == 1  # decoding: every cached entry precedes the query
        if not one_query:
            key_seq = torch.cat([layer.seq[idx], query_seq], dim=1)
        idx = torch.cat([idx, new.masked_fill(~query_valid, 0)], dim=1)
        ok = torch.cat([ok, query_valid], dim=1)
        self._armed = (layer, view, rows, query_seq, query_valid, idx)
        if one_query:
            if bool(ok.all()):
                return None  # every gathered key is visible: attention needs no mask
            allowed = ok.unsqueeze(1)
        else:
            allowed = ok.unsqueeze(1) & (key_seq.unsqueeze(1) <= query_seq.unsqueeze(2))
            allowed = torch.where(query_valid.unsqueeze(2), allowed, ok.unsqueeze(1))  # padding queries: any key
        mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
        return mask.masked_fill(~allowed, torch.finfo(dtype).min).unsqueeze(1)

    def update(self, key_states, value_states, layer_idx: int = 0, *args, **kwargs):
        """Called by the attention of the armed layer: store the valid queries' keys/values, return
        the keys/values to attend to, in the order `begin` laid out."""
        if self._armed is None:
            raise RuntimeError("AllocationCache is driven by AniraModel's cached forward; it cannot be used "
                               "by another model's layers.")
        layer, view, rows, query_seq, query_valid, idx = self._armed
        self._armed = None
        layer.append(rows, key_states, value_states, query_seq, query_valid, view, view)
        return layer.gather(idx)

    def initialise(self, batch_size: int, kv_heads: int, head_dim: int, dtype, device):
        if self.layers[0].is_initialized:
            return
        empty = torch.zeros(batch_size, kv_heads, 0, head_dim, dtype=dtype, device=device)
        for layer in self.layers:
            layer.lazy_initialization(empty, empty)
        self.exit_depths = torch.zeros(batch_size, 0, dtype=torch.long, device=device)

    def add_frozen(self, rows, keys, values, seq, valid, depth):
        """Store the frozen keys/values (B', kv_heads, a, hd) of tokens that exited after iteration
        `depth` < D (an int, or (B', a) per token), once, listed in the views of iterations depth+1..D."""
        if isinstance(depth, int) and not 1 <= depth < self.max_depth:
            raise ValueError(f"a frozen entry needs an exit depth in 1..D-1 = 1..{self.max_depth - 1}, got {depth}")
        self.recurrent.append(rows, keys, values, seq, valid, lo=depth, hi=self.max_depth - 1)

    # -- bookkeeping kept in step with generate() -----------------------------------------
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        return self.seen + query_length, 0

    def _select_rows(self, mapping):
        """New row r holds old row mapping[r], in every slot and in exit_depths."""
        for layer in self.layers:
            layer.select_rows(mapping)
        if self.exit_depths is not None:
            self.exit_depths = self.exit_depths[mapping.to(self.exit_depths.device)]

    def reorder_cache(self, beam_idx):
        self._select_rows(beam_idx)

    def batch_select_indices(self, indices):
        self._select_rows(indices)

    def batch_repeat_interleave(self, repeats: int):
        if self.exit_depths is not None:
            batch = self.exit_depths.shape[0]
            self._select_rows(torch.arange(batch, device=self.exit_depths.device).repeat_interleave(repeats))

    def crop(self, tokens_to_remove: int):
        """Drop the last tokens (a negative count, as transformers passes it, or a new length >= 0)."""
        keep = self.seen + tokens_to_remove if tokens_to_remove < 0 else tokens_to_remove
        keep = max(0, min(self.seen, keep))
        for layer in self.layers:
            layer.crop(keep)
        if self.exit_depths is not None:
            self.exit_depths = self.exit_depths[:, :keep]
        self.seen = keep

    @property
    def batch_size(self) -> int:
        return -1 if self.exit_depths is None else self.exit_depths.shape[0]

    # -- accounting --------------------------------------------------------------------
    def memory_report(self) -> dict:
        """Bytes allocated vs a fixed-depth cache of the same tokens, and the entry-count accounting.

        fixed = (P + D + C) entries per non-padding token; used = entries actually stored;
        predicted = P + C + d̄ + f per token (see the module docstring)."""
        layer = self.layers[0]
        if not layer.is_initialized or self.exit_depths is None:
            return {}
        h, hd = layer.keys.shape[1], layer.keys.shape[2]
        entry = 2 * h * hd * layer.keys.element_size()
        depths = self.exit_depths[self.exit_depths > 0].float()
        tokens = depths.numel()
        held = sum(x.bytes_held() for x in self.layers)
        used = sum(x.entries() for x in self.layers) * entry
        fixed = tokens * self.n_slots * entry
        d_mean = float(depths.mean()) if tokens else 0.0
        f = float((depths < self.max_depth).float().mean()) if tokens else 0.0
        predicted = (self.prelude_layers + self.coda_layers + d_mean + f) / self.n_slots
        return {"tokens": tokens, "mean_depth": d_mean, "bytes_held": held, "bytes_used": used,
                "bytes_fixed_depth": fixed, "held_over_fixed": held / max(fixed, 1),
                "used_over_fixed": used / max(fixed, 1), "predicted_over_fixed": predicted}


def cache_signature(config) -> tuple:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return (config.prelude_layers, config.max_depth, config.coda_layers, config.num_key_value_heads, head_dim)
