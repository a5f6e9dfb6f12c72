"""Peer servers for the benchmark: the same models behind FastAPI (unbatched) and LitServe (batched)."""
