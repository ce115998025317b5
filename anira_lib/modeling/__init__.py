"""The model: configuration, deciders, the recurrent model, its allocation-aware KV cache, and Llama conversion."""
