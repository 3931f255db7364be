"""Beside the model: beam search (beam.py, _sample.py --beam) and the character n-gram baseline (ngram.py,
_evaluate.py --ngram)."""
