"""SST-2 sentiment: a bidirectional LSTM classifier."""
