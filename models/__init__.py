"""Model code: tokenizers, networks, training, evaluation and TorchScript export."""
