"""Significance analysis: gates, cached-input ablation, first-order scores, fake quantization, reports."""
