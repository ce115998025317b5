"""Allocation-aware KV cache (paper §3.2.4; specs/paper.md, "the contract for this library").

Layer slots: prelude 0..P-1, recurrent iteration i (1-based) P+i-1, coda P+D..P+D+C-1, plus one
*frozen* store. A token t with exit depth d_t leaves

- one key/value in every prelude and coda slot,
- one key/value in recurrent slots 1..d_t (computed from h_{i-1}(t), its state entering iteration i),
- one frozen key/value computed from its final state h_{d_t}(t) if d_t < D: Eq. 5 makes every deeper
  iteration see exactly that one (for the shared core the projections are the same at every iteration).

So the cache holds P + C + d_t + [d_t < D] entries per token instead of P + D + C:
bytes held / fixed-depth bytes ≈ (P + C + d̄ + f) / (P + D + C), f = share of tokens with d_t < D.

Storage is dense tensors per slot, (B, kv_heads, capacity, head_dim): entries of a row are packed in
the order they arrive (a slot stores only the tokens that ran it), with the sequence index of each
entry beside them. Attention is order-free given the mask, so iteration i's keys are simply
[slot i entries] + [frozen entries of tokens with d < i], masked causally by sequence index.

The model drives the cache: before each layer call it calls `begin(slot, rows, query_seq, iteration)`
(which rows run, which tokens are queries) and passes the returned mask to the transformers layer;
the layer's attention then calls `update(k, v, layer_idx)`, which stores the queries' keys/values and
returns the keys/values to attend to.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

CHUNK = 32  # capacity grows in steps of this many entries (bytes held stay close to bytes used)


class PackedKVLayer(CacheLayerMixin):
    """One slot: keys/values (B, kv_heads, capacity, head_dim), seq (B, capacity) sequence index of
    each entry (-1: empty), count (B,) entries per row, tag (B, capacity) an int per entry (the
    exit depth, for the frozen store)."""

    is_compileable = False
    is_croppable = True
    is_sliding = False

    def __init__(self):
        super().__init__()
        self.seq = self.tag = self.count = None

    def lazy_initialization(self, key_states, value_states):
        B, h, _, hd = key_states.shape
        self.dtype, self.device = key_states.dtype, key_states.device
        self.keys = key_states.new_zeros(B, h, 0, hd)
        self.values = value_states.new_zeros(B, h, 0, hd)
        self.seq = torch.full((B, 0), -1, dtype=torch.long, device=self.device)
        self.tag = torch.zeros((B, 0), dtype=torch.long, device=self.device)
        self.count = torch.zeros(B, dtype=torch.long, device=self.device)
        self.is_initialized = True

    def _ensure_capacity(self, needed: int):
        cap = self.keys.shape[2]
        if needed <= cap:
            return
        grow = ((needed - cap + CHUNK - 1) // CHUNK) * CHUNK
        B, h, _, hd = self.keys.shape
        self.keys = torch.cat([self.keys, self.keys.new_zeros(B, h, grow, hd)], dim=2)
        self.values = torch.cat([self.values, self.values.new_zeros(B, h, grow, hd)], dim=2)
        self.seq = torch.cat([self.seq, self.seq.new_full((B, grow), -1)], dim=1)
        self.tag = torch.cat([self.tag, self.tag.new_zeros(B, grow)], dim=1)

    def destinations(self, rows, valid):
        """Where the valid entries (B', a) of `rows` will be written: (B', a) indices into capacity."""
        return self.count[rows].unsqueeze(1) + valid.long().cumsum(1) - 1

    def append(self, rows, keys, values, seq, valid, tag=None):
        """Store the valid entries: keys/values (B', h, a, hd), seq/valid/tag (B', a)."""
        if not self.is_initialized:
            raise RuntimeError("append before initialisation")
        dest = self.destinations(rows, valid)
        n_new = valid.long().sum(1)
        if n_new.numel():
            self._ensure_capacity(int((self.count[rows] + n_new).max()))
        b, j = valid.nonzero(as_tuple=True)
        r, d = rows[b], dest[b, j]
        self.keys[r, :, d] = keys.transpose(1, 2)[b, j].to(self.keys.dtype)
        self.values[r, :, d] = values.transpose(1, 2)[b, j].to(self.values.dtype)
        self.seq[r, d] = seq[b, j]
        if tag is not None:
            self.tag[r, d] = tag[b, j]
        self.count[rows] += n_new

    def view(self, rows, length: int):
        """keys, values (B', h, length, hd) and seq, tag (B', length) of `rows` (seq -1 = empty)."""
        self._ensure_capacity(length)
        if rows.numel() == self.keys.shape[0]:  # every row (rows are sorted and unique): views, no copy
            return self.keys[:, :, :length], self.values[:, :, :length], self.seq[:, :length], self.tag[:, :length]
        return (self.keys[rows, :, :length], self.values[rows, :, :length], self.seq[rows, :length],
                self.tag[rows, :length])

    # -- the generic Cache layer protocol -------------------------------------------------
    def update(self, key_states, value_states, *args, **kwargs):
        raise RuntimeError("AllocationCache slots are written through AllocationCache.update, driven by AniraModel.")

    def get_seq_length(self) -> int:
        return int(self.count.max()) if self.is_initialized and self.count.numel() else 0

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0

    def get_max_length(self) -> int:
        return -1

    def _map(self, fn):
        if self.is_initialized:
            self.keys, self.values = fn(self.keys), fn(self.values)
            self.seq, self.tag, self.count = fn(self.seq), fn(self.tag), fn(self.count)

    def reorder_cache(self, beam_idx):
        self._map(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_select_indices(self, indices):
        self._map(lambda t: t[indices.to(t.device)])

    def batch_repeat_interleave(self, repeats: int):
        self._map(lambda t: t.repeat_interleave(repeats, dim=0))

    def crop(self, keep_seq: int):
        """Forget entries of sequence index >= keep_seq and pack the rest to the front of each row
        (frozen entries arrive by exit time, not in sequence order, so holes can be anywhere)."""
        if self.is_initialized:
            seq = self.seq.masked_fill(self.seq >= keep_seq, -1)
            order = torch.sort((seq < 0).to(torch.int8), dim=1, stable=True).indices
            idx = order[:, None, :, None].expand_as(self.keys)
            self.keys, self.values = self.keys.gather(2, idx), self.values.gather(2, idx)
            self.seq, self.tag = seq.gather(1, order), self.tag.gather(1, order)
            self.count = (self.seq >= 0).sum(1)

    def reset(self):
        self.is_initialized = False
        self.keys = self.values = self.seq = self.tag = self.count = None

    def bytes_held(self) -> int:
        if not self.is_initialized:
            return 0
        return self.keys.numel() * self.keys.element_size() + self.values.numel() * self.values.element_size()

    def entries(self) -> int:
        return int(self.count.sum()) if self.is_initialized else 0


class AllocationCache(Cache):
    """KV cache for `AniraForCausalLM` that holds only what each token's exit depth requires.

    Built for one model configuration (P, D, C, kv heads, head dim); `exit_depths` (B, S) keeps every
    cached token's exit depth (0 for padding), in step through reorder/select/repeat/crop."""

    def __init__(self, config):
        self.prelude_layers, self.max_depth, self.coda_layers = (config.prelude_layers, config.max_depth,
                                                                  config.coda_layers)
        self.n_slots = self.prelude_layers + self.max_depth + self.coda_layers
        super().__init__(layers=[PackedKVLayer() for _ in range(self.n_slots + 1)])
        self.signature = cache_signature(config)
        self.exit_depths: torch.Tensor | None = None
        self.seen = 0
        self.block_calls = 0  # (token, recurrent iteration) pairs actually computed
        self._armed = None

    @property
    def frozen(self) -> PackedKVLayer:
        return self.layers[self.n_slots]

    def is_recurrent_slot(self, slot: int) -> bool:
        return self.prelude_layers <= slot < self.prelude_layers + self.max_depth

    # -- driving a layer call -------------------------------------------------------------
    def begin(self, slot: int, rows, query_seq, query_valid, iteration: int | None, dtype) -> torch.Tensor:
        """Arm `slot` for one layer call by `rows` (B',) with queries at sequence indices query_seq
        (B', a) (query_valid marks real ones). Returns the additive attention mask (B', 1, a, keys)."""
        layer = self.layers[slot]
        if not layer.is_initialized:
            raise RuntimeError("call AllocationCache.initialise(...) before the first layer call")
        n_after = int((layer.count[rows] + query_valid.long().sum(1)).max()) if len(rows) else 0
        _, _, seq, _ = layer.view(rows, n_after)
        seq = seq.clone()
        b, j = query_valid.nonzero(as_tuple=True)
        seq[b, layer.destinations(rows, query_valid)[b, j]] = query_seq[b, j]
        ok = seq >= 0
        key_seq = seq
        n_frozen = 0
        if iteration is not None and self.is_recurrent_slot(slot):
            n_frozen = int(self.frozen.count[rows].max()) if len(rows) else 0
            _, _, fseq, ftag = self.frozen.view(rows, n_frozen)
            key_seq = torch.cat([seq, fseq], dim=1)
            ok = torch.cat([ok, (fseq >= 0) & (ftag < iteration)], dim=1)
        allowed = ok.unsqueeze(1) & (key_seq.unsqueeze(1) <= query_seq.unsqueeze(2))
        allowed = torch.where(query_valid.unsqueeze(2), allowed, ok.unsqueeze(1))  # padding queries: any key
        self._armed = (slot, rows, query_seq, query_valid, n_after, n_frozen)
        mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
        return mask.masked_fill(~allowed, torch.finfo(dtype).min).unsqueeze(1)

    def update(self, key_states, value_states, layer_idx: int = 0, *args, **kwargs):
        """Called by the attention of the armed layer: store the valid queries' keys/values, return
        the keys/values to attend to (slot entries, then frozen entries for recurrent slots)."""
        if self._armed is None:
            raise RuntimeError("AllocationCache is driven by AniraModel's cached forward; it cannot be used "
                               "by another model's layers.")
        slot, rows, query_seq, query_valid, n_after, n_frozen = self._armed
        self._armed = None
        layer = self.layers[slot]
        layer.append(rows, key_states, value_states, query_seq, query_valid)
        k, v, _, _ = layer.view(rows, n_after)
        if n_frozen:
            fk, fv, _, _ = self.frozen.view(rows, n_frozen)
            k, v = torch.cat([k, fk], dim=2), torch.cat([v, fv], dim=2)
        return k, v

    def initialise(self, batch_size: int, kv_heads: int, head_dim: int, dtype, device):
        if self.layers[0].is_initialized:
            return
        empty = torch.zeros(batch_size, kv_heads, 0, head_dim, dtype=dtype, device=device)
        for layer in self.layers:
            layer.lazy_initialization(empty, empty)
        self.exit_depths = torch.zeros(batch_size, 0, dtype=torch.long, device=device)

    def add_frozen(self, rows, keys, values, seq, valid, depth):
        """Store the frozen keys/values of tokens that exited at `depth` (B', a)."""
        self.frozen.append(rows, keys, values, seq, valid, tag=depth)

    # -- bookkeeping kept in step with generate() -----------------------------------------
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        return self.seen + query_length, 0

    def reorder_cache(self, beam_idx):
        super().reorder_cache(beam_idx)
        if self.exit_depths is not None:
            self.exit_depths = self.exit_depths.index_select(0, beam_idx.to(self.exit_depths.device))

    def batch_select_indices(self, indices):
        super().batch_select_indices(indices)
        if self.exit_depths is not None:
            self.exit_depths = self.exit_depths[indices.to(self.exit_depths.device)]

    def batch_repeat_interleave(self, repeats: int):
        super().batch_repeat_interleave(repeats)
        if self.exit_depths is not None:
            self.exit_depths = self.exit_depths.repeat_interleave(repeats, dim=0)

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
        h, hd = layer.keys.shape[1], layer.keys.shape[3]
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
