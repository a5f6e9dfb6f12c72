"""Multi30k translation: an attention encoder-decoder LSTM, English -> German and French."""
