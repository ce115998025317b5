"""Allocation-aware KV cache (paper §3.2.4; docs/cache_contract.md).

A token t with exit depth d_t leaves

- one key/value in every Prelude and Coda layer,
- one key/value in each of the R layers of the recurrent block for each iteration 1..d_t,
- if d_t < D, one *frozen* key/value per block layer, computed from its final state h_{d_t}: an exited
  token presents h_{d_t} to every layer of every deeper iteration (Eq. 5), so for a shared block
  that key/value is the same at every iteration and is stored once.

So the cache holds P + C + R·(d_t + [d_t < D]) entries per token instead of P + R·D + C:
bytes held / fixed-depth bytes ≈ (P + C + R·(d̄ + f)) / (P + R·D + C), f = share of tokens with d_t < D.

Storage. A pool is a dense array of entries, (entries, kv_heads, head_dim), shared by the rows of
the batch (a pool stores only the tokens that ran it, so rows are never padded to each other), with
each entry's row and sequence index beside it. Each Prelude and Coda layer has a pool with one view;
each of the R block layers has a pool with D views, one per iteration. A view is a small int table
listing, per row, the entries a layer call attends to: for iteration i, its own entries and the
frozen entries of tokens that exited before i. One gather gives a layer call exactly one key per
cached token; the attention mask comes from the gathered entries' sequence indices.

The contract with the model (one object per job, no call-order protocol):

    step = cache.open_step(valid, dtype, device)      # one per forward: B, T, the new sequence indices
    view = step.layer_view(part, layer, rows, seq, ok, iteration)   # one per layer call
    layer(x, attention_mask=view.mask, past_key_values=view, ...)  # attention calls view.update(k, v, idx)
    step.add_frozen(layer, rows, keys, values, seq, ok, depth)      # per block layer, exits before D
    step.commit(depths)                                # exit depths, length, block calls: once per forward

`CacheLayout` is the one place that numbers layers and pools.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

GROWTH = 32      # capacity grows by what is needed, capacity / GROWTH or MIN_GROWTH entries, whichever
MIN_GROWTH = 8   # is more: held bytes stay within ~3% (+8 entries per pool) of used
PARTS = ("prelude", "core", "coda")


class CacheLayout(NamedTuple):
    """The shape a cache is built for; `pool(part, layer)` numbers the pools (one place for it):
    Prelude layers 0..P-1, block layers P..P+R-1 (each with D views), Coda layers P+R..P+R+C-1."""

    prelude_layers: int
    recurrent_layers: int
    max_depth: int
    coda_layers: int
    num_key_value_heads: int
    head_dim: int

    @classmethod
    def of(cls, config) -> CacheLayout:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(config.prelude_layers, getattr(config, "recurrent_layers", 1), config.max_depth,
                   config.coda_layers, config.num_key_value_heads, head_dim)

    @property
    def slots(self) -> int:
        """Layer calls of one full-depth forward pass: P + R·D + C."""
        return self.prelude_layers + self.recurrent_layers * self.max_depth + self.coda_layers

    def pool(self, part: str, layer: int) -> int:
        if part == "prelude":
            size, first = self.prelude_layers, 0
        elif part == "core":
            size, first = self.recurrent_layers, self.prelude_layers
        elif part == "coda":
            size, first = self.coda_layers, self.prelude_layers + self.recurrent_layers
        else:
            raise ValueError(f"part {part!r} is unknown; use one of {PARTS}.")
        if not 0 <= layer < size:
            raise IndexError(f"{part} layer {layer} is outside 0..{size - 1}.")
        return first + layer

    def mismatch(self, other: CacheLayout) -> str | None:
        """A sentence naming the fields where `other` (a model's layout) differs from this one, or None."""
        diffs = [f"{name}={mine} (model: {theirs})" for name, mine, theirs in zip(self._fields, self, other)
                 if mine != theirs]
        return ", ".join(diffs) or None


def _directory(name: str) -> property:
    """A field of a pool's directory: the pool's own, or its group leader's (read only there)."""
    private = "_" + name

    def get(self):
        return getattr(self if self.leader is None else self.leader, private)

    def set(self, value):
        if self.leader is not None:
            raise AttributeError(f"a follower pool's {name} is its leader's; write it there")
        setattr(self, private, value)
    return property(get, set)


class PackedKVLayer(CacheLayerMixin):
    """A pool of entries shared by all rows, so no row is padded to another's length:
    keys/values (capacity, kv_heads, head_dim); row, seq (sequence index), lo and hi (the range of
    views that list the entry) of shape (capacity,); the first `n` entries are in use.
    For each of `views` views, an int table `index` (views, B, width) lists each row's pool positions
    in pool order, `counts` (views, B) of them. Prelude and coda slots have one view.

    row, seq, lo, hi, index and counts are the pool's directory. Pools that always receive the same
    entries in the same order (a group: the Prelude's and the Coda's; the R block layers') share one:
    the group's first pool (`leader=None`) keeps it, and each other pool (`leader=` that pool) stores
    only its own keys/values, at the same positions, and reads the leader's directory."""

    is_compileable = False
    is_croppable = True
    is_sliding = False
    row, seq, lo, hi, index, counts, width, view = map(_directory, ("row", "seq", "lo", "hi", "index", "counts",
                                                                    "width", "view"))

    def __init__(self, views: int = 1, leader: PackedKVLayer | None = None):
        super().__init__()
        self.views, self.leader = views, leader
        self.n = 0
        self.moved = None  # the positions the last _rebuild kept (its followers keep the same)
        if leader is None:
            self.row = self.seq = self.lo = self.hi = self.index = self.counts = self.view = None
            self.width = 0  # an upper bound of counts.max(), kept on the host so appends need no sync

    def lazy_initialization(self, key_states, value_states):
        B, h, _, hd = key_states.shape
        self.dtype, self.device = key_states.dtype, key_states.device
        self.keys = key_states.new_zeros(0, h, hd)
        self.values = value_states.new_zeros(0, h, hd)
        self.n = 0
        self.is_initialized = True
        if self.leader is not None:
            return
        self.row, self.seq, self.lo, self.hi = (torch.zeros(0, dtype=torch.long, device=self.device) for _ in range(4))
        self.index = torch.zeros(self.views, B, 0, dtype=torch.long, device=self.device)
        self.counts = torch.zeros(self.views, B, dtype=torch.long, device=self.device)
        self.view = torch.arange(self.views, device=self.device)
        self.width = 0

    def _ensure_capacity(self, needed: int, width: int):
        cap = self.keys.shape[0]
        if needed > cap:
            grow = max(needed - cap, cap // GROWTH, MIN_GROWTH)
            self.keys = torch.cat([self.keys, self.keys.new_zeros(grow, *self.keys.shape[1:])])
            self.values = torch.cat([self.values, self.values.new_zeros(grow, *self.values.shape[1:])])
            if self.leader is not None:
                return
            self.row, self.seq, self.lo, self.hi = (torch.cat([t, t.new_zeros(grow)])
                                                    for t in (self.row, self.seq, self.lo, self.hi))
        if self.leader is None and width > self.index.shape[2]:
            grow = max(width - self.index.shape[2], 64)  # the int tables are small: grow them in steps
            self.index = torch.cat([self.index, self.index.new_zeros(*self.index.shape[:2], grow)], dim=2)

    def append(self, rows, keys, values, seq, valid, lo=0, hi=0):
        """Store the valid entries: keys/values (B', h, a, hd); seq, valid (B', a); rows (B',). Each is
        listed in views lo..hi (ints, or (B', a) tensors: one range per entry). They take pool
        positions n, n+1, ... in row-major order of `valid`, and each view lists them in that order.
        A follower stores keys/values only: its leader's directory lists them already."""
        a = valid.shape[1]
        if self.leader is not None:
            self._follow(keys, values, valid)
            return
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

    def _follow(self, keys, values, valid):
        """A follower's append: the same entries its leader listed, at the same positions."""
        if valid.shape[1] == 1 and bool(valid.all()):
            k, v = keys[:, :, 0], values[:, :, 0]
        else:
            b, j = valid.nonzero(as_tuple=True)
            k, v = keys.transpose(1, 2)[b, j], values.transpose(1, 2)[b, j]
        end = self.n + k.shape[0]
        if end > self.leader.n:
            raise RuntimeError(f"a follower pool appended past its leader ({end} > {self.leader.n} entries): the "
                               "pools of a group must receive the same entries in the same order.")
        self._ensure_capacity(end, 0)
        self.keys[self.n:end], self.values[self.n:end] = k.to(self.keys.dtype), v.to(self.values.dtype)
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
        self.moved = positions
        self.seq, self.lo, self.hi = self.seq[positions], self.lo[positions], self.hi[positions]
        self.row = new_rows
        self.n = positions.numel()
        view = self.view.view(-1, 1, 1)
        mine = self.row.unsqueeze(0) == torch.arange(batch, device=self.device).unsqueeze(1)  # (B, n)
        listed = mine & (self.lo <= view) & (view <= self.hi)  # (views, B, n)
        self.counts = listed.sum(-1)
        width = self.width = int(self.counts.max()) if batch and self.n else 0
        self.index = torch.sort((~listed).to(torch.int8), dim=-1, stable=True).indices[..., :width]

    def _follow_rebuild(self) -> bool:
        """A follower keeps the entries its leader's last rebuild kept (the leader goes first)."""
        if self.leader is None or not self.is_initialized:
            return False
        positions = self.leader.moved
        self.keys, self.values, self.n = self.keys[positions], self.values[positions], positions.numel()
        return True

    def select_rows(self, mapping):
        """New row r holds a copy of old row mapping[r] (reorder, select, repeat). A follower's leader
        must have done it first (AllocationCache does the pools in order)."""
        if self._follow_rebuild():
            return
        if self.is_initialized:
            mapping = mapping.to(self.device)
            new_row, position = (self.row[: self.n].unsqueeze(0) == mapping.unsqueeze(1)).nonzero(as_tuple=True)
            self._rebuild(position, new_row, mapping.numel())

    def reorder_cache(self, beam_idx):
        self.select_rows(beam_idx)

    def batch_select_indices(self, indices):
        self.select_rows(indices)

    def batch_repeat_interleave(self, repeats: int):
        if self._follow_rebuild():
            return
        if self.is_initialized:
            batch = self.counts.shape[1]
            self.select_rows(torch.arange(batch, device=self.device).repeat_interleave(repeats))

    def crop(self, keep_seq: int):
        """Forget the entries of sequence index >= keep_seq."""
        if self._follow_rebuild():
            return
        if self.is_initialized:
            keep = (self.seq[: self.n] < keep_seq).nonzero().flatten()
            self._rebuild(keep, self.row[keep], self.counts.shape[1])

    # -- the generic Cache layer protocol -------------------------------------------------
    def update(self, key_states, value_states, *args, **kwargs):
        raise RuntimeError("AllocationCache pools are written through the SlotView of each layer call, "
                           "which AniraModel's cached forward hands to the layer.")

    def get_seq_length(self) -> int:
        return self.n

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.n + query_length, 0

    def get_max_length(self) -> int:
        return -1

    def reset(self):
        self.is_initialized = False
        self.keys = self.values = self.moved = None
        self.n = 0
        if self.leader is None:
            self.row = self.seq = self.lo = self.hi = self.index = self.counts = None
            self.width = 0

    def bytes_held(self) -> int:
        if not self.is_initialized:
            return 0
        return self.keys.numel() * self.keys.element_size() + self.values.numel() * self.values.element_size()

    def entries(self) -> int:
        return self.n if self.is_initialized else 0


class SlotView:
    """What one layer call may read and write: view `view` of `pool` for `rows` (B',), whose queries
    sit at sequence indices `query_seq` (B', a) (`query_valid` marks the real ones).

    mask: additive attention mask (B', 1, a, keys) over the keys `update` returns (the entries the view
    lists for these rows, then the queries' own), or None when every query may see every key, which
    holds only when the forward pass adds one token per row (`one_step`) and no key is padding.
    transformers' attention calls `update(k, v, layer_idx)` once: it stores the valid queries'
    keys/values in this pool, listed in this view only, and returns keys/values (B', kv_heads, keys, hd)
    in the mask's order. `layer_idx` is not consulted: the block's layers keep one index for every
    iteration, so the view, not the index, says where the entries go."""

    __slots__ = ("pool", "view", "rows", "query_seq", "query_valid", "idx", "mask", "used")

    def __init__(self, pool: PackedKVLayer, view: int, rows, query_seq, query_valid, dtype, one_step: bool,
                 layout=None):
        self.pool, self.view, self.rows, self.query_seq, self.query_valid = pool, view, rows, query_seq, query_valid
        self.used = False
        if layout is not None:  # (idx, mask) of a view just built on a pool holding the same entries
            self.idx, self.mask = layout
            return
        every_row = rows.numel() == pool.counts.shape[1]  # rows come sorted and unique from the model
        idx, ok = pool.layout(view, rows, every_row)
        new = pool.n + query_valid.reshape(-1).long().cumsum(0).view_as(query_valid) - 1
        key_seq = None if one_step else torch.cat([pool.seq[idx], query_seq], dim=1)
        ok = torch.cat([ok, query_valid], dim=1)
        if one_step:  # one new token per row: every cached key precedes it
            allowed = None if bool(ok.all()) else ok.unsqueeze(1)
        else:  # several new tokens per row: causal by sequence index (frozen entries of later tokens too)
            allowed = ok.unsqueeze(1) & (key_seq.unsqueeze(1) <= query_seq.unsqueeze(2))
            allowed = torch.where(query_valid.unsqueeze(2), allowed, ok.unsqueeze(1))  # padding queries: any key
        self.idx = torch.cat([idx, new.masked_fill(~query_valid, 0)], dim=1)
        self.mask = None
        if allowed is not None:
            mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
            self.mask = mask.masked_fill(~allowed, torch.finfo(dtype).min).unsqueeze(1)

    def update(self, key_states, value_states, layer_idx: int | None = None, *args, **kwargs):
        if self.used:
            raise RuntimeError("a SlotView serves one layer call; ask the CacheStep for a new one.")
        self.used = True
        self.pool.append(self.rows, key_states, value_states, self.query_seq, self.query_valid, self.view, self.view)
        return self.pool.gather(self.idx)


class CacheStep:
    """One forward pass through an `AllocationCache`: B rows, T new tokens at sequence indices
    seen..seen+T-1 (`seq`, (B, T)), `valid` (B, T) marking the real ones. Hands out each layer call's
    `SlotView`, stores frozen entries, and `commit`s the pass's bookkeeping to the cache, once."""

    def __init__(self, cache: AllocationCache, valid: torch.Tensor, dtype):
        self.cache, self.valid, self.dtype = cache, valid, dtype
        B, T = valid.shape
        self.seq = torch.arange(cache.seen, cache.seen + T, device=valid.device).unsqueeze(0).expand(B, T)
        self.one_step = T == 1
        self.block_calls = 0  # (token, iteration) pairs of block 0 computed; an int or a 0-d tensor
        self.committed = False
        self.layouts = {}  # (core?, view, entries) -> (rows, idx, mask) of the last view built there

    def layer_view(self, part: str, layer: int, rows, seq, ok, iteration: int = 1) -> SlotView:
        """The SlotView for `part`'s layer `layer` ("prelude", "core", "coda"; for "core" at recurrent
        iteration 1..D) run by `rows` (B',) with queries at seq, ok (B', a)."""
        layout = self.cache.layout
        pool = self.cache.layers[layout.pool(part, layer)]
        view = 0
        if part == "core":
            if not 1 <= iteration <= layout.max_depth:
                raise IndexError(f"iteration {iteration} is outside 1..D = 1..{layout.max_depth}.")
            view = iteration - 1
            if layer == 0:
                self.block_calls = self.block_calls + (ok.numel() if self.one_step else ok.sum())
        # The pools of one group hold the same entries in the same places (one directory, see
        # PackedKVLayer): the Prelude's and the Coda's (every token, once per step), and the R block
        # layers' (the same tokens per iteration, the same frozen ones). A view for the same rows, view
        # and pool length is the same indices and mask, so it is built once per step and group, by the
        # group's first pool (the Coda reuses the Prelude's; block layer r > 0 layer 0's).
        key = (part == "core", view, pool.n)
        known = self.layouts.get(key)
        if known is not None and known[0] is rows:
            return SlotView(pool, view, rows, seq, ok, self.dtype, self.one_step, layout=known[1:])
        if pool.leader is not None:  # its directory already lists the leader's entries of this call
            raise RuntimeError(f"{part} layer {layer} shares its pool's directory with the group's first layer, "
                               "which must be called first, on the same rows, in each step.")
        slot = SlotView(pool, view, rows, seq, ok, self.dtype, self.one_step)
        self.layouts[key] = (rows, slot.idx, slot.mask)
        return slot

    def add_frozen(self, layer: int, rows, keys, values, seq, ok, depth):
        """Store block layer `layer`'s frozen keys/values (B', kv_heads, a, hd) of tokens that exited after
        iteration `depth` < D (an int, or (B', a) per token), once, listed in iterations depth+1..D."""
        D = self.cache.layout.max_depth
        if isinstance(depth, int) and not 1 <= depth < D:
            raise ValueError(f"a frozen entry needs an exit depth in 1..D-1 = 1..{D - 1}, got {depth}")
        self.cache.layers[self.cache.layout.pool("core", layer)].append(rows, keys, values, seq, ok, lo=depth, hi=D - 1)

    def commit(self, depths: torch.Tensor):
        """Record the pass: exit depths (B, T) of the new tokens (0 kept for padding), the new length
        and the block calls made. Once per step."""
        if self.committed:
            raise RuntimeError("this CacheStep was committed already; open a new one per forward pass.")
        self.committed = True
        cache = self.cache
        cache.exit_depths = torch.cat([cache.exit_depths, torch.where(self.valid, depths, 0)], dim=1)
        cache.seen += self.valid.shape[1]
        cache.block_calls += int(self.block_calls)


class AllocationCache(Cache):
    """KV cache for `AniraForCausalLM` that holds only what each token's exit depth requires.

    Built for one `CacheLayout` (P, R, D, C, kv heads, head dim). `layers`: P Prelude pools, R block
    pools (D views each), C Coda pools. `exit_depths` (B, S) keeps every cached token's exit depth (0
    for padding), in step through reorder/select/repeat/crop; `seen` is S; `block_calls` counts the
    (token, iteration) pairs the recurrent block actually computed. The model writes none of these:
    it opens a `CacheStep` per forward pass and commits it."""

    def __init__(self, config):
        self.layout = CacheLayout.of(config)
        P, R, D, C = self.layout[:4]
        edge = [PackedKVLayer()] if P + C else []  # the Prelude's and Coda's pools: one group
        edge += [PackedKVLayer(leader=edge[0]) for _ in range(P + C - 1)]
        core = [PackedKVLayer(views=D)]  # the block layers' pools: another
        core += [PackedKVLayer(views=D, leader=core[0]) for _ in range(R - 1)]
        super().__init__(layers=edge[:P] + core + edge[P:])
        self.exit_depths: torch.Tensor | None = None
        self.seen = 0
        self.block_calls = 0

    @property
    def max_depth(self) -> int:
        return self.layout.max_depth

    @property
    def core_pools(self) -> list[PackedKVLayer]:
        """The R pools of the recurrent block's layers (view i-1 = iteration i)."""
        P, R = self.layout.prelude_layers, self.layout.recurrent_layers
        return self.layers[P:P + R]

    def check_layout(self, config):
        """Refuse a model this cache was not built for, naming the fields that differ."""
        diff = self.layout.mismatch(CacheLayout.of(config))
        if diff:
            raise ValueError(f"this AllocationCache was built for another model: {diff}; pass "
                             "AllocationCache(model.config), or no cache (generate() builds one).")

    def open_step(self, valid: torch.Tensor, dtype, device) -> CacheStep:
        """Begin a forward pass of valid.shape = (B, T) new tokens; the pools are allocated on the first."""
        B = valid.shape[0]
        if self.exit_depths is None:
            empty = torch.zeros(B, self.layout.num_key_value_heads, 0, self.layout.head_dim, dtype=dtype, device=device)
            for layer in self.layers:
                layer.lazy_initialization(empty, empty)
            self.exit_depths = torch.zeros(B, 0, dtype=torch.long, device=device)
        elif self.batch_size != B:
            raise ValueError(f"the cache holds {self.batch_size} sequences but {B} were passed; use one "
                             "AllocationCache per batch.")
        return CacheStep(self, valid, dtype)

    def update(self, key_states, value_states, layer_idx: int = 0, *args, **kwargs):
        raise RuntimeError("AllocationCache is driven by AniraModel's cached forward, which hands each layer "
                           "call its own SlotView; it cannot be used by another model's layers.")

    # -- bookkeeping kept in step with generate() -----------------------------------------
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        return self.seen + query_length, 0

    def _select_rows(self, mapping):
        """New row r holds old row mapping[r], in every pool and in exit_depths."""
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

        fixed = P + R·D + C entries per non-padding token; used = entries actually stored;
        predicted = P + C + R·(d̄ + f) per token (see the module docstring)."""
        layer = self.layers[0]
        if not layer.is_initialized or self.exit_depths is None:
            return {}
        P, R, D, C = self.layout[:4]
        h, hd = layer.keys.shape[1], layer.keys.shape[2]
        entry = 2 * h * hd * layer.keys.element_size()
        depths = self.exit_depths[self.exit_depths > 0].float()
        tokens = depths.numel()
        held = sum(x.bytes_held() for x in self.layers)
        used = sum(x.entries() for x in self.layers) * entry
        fixed = tokens * self.layout.slots * entry
        d_mean = float(depths.mean()) if tokens else 0.0
        f = float((depths < D).float().mean()) if tokens else 0.0
        predicted = (P + C + R * (d_mean + f)) / self.layout.slots
        return {"tokens": tokens, "mean_depth": d_mean, "bytes_held": held, "bytes_used": used,
                "bytes_fixed_depth": fixed, "held_over_fixed": held / max(fixed, 1),
                "used_over_fixed": used / max(fixed, 1), "predicted_over_fixed": predicted}


__all__ = ["AllocationCache", "CacheLayout", "CacheStep", "SlotView", "PackedKVLayer"]
