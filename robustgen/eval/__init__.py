"""Measuring robustness: a VLM asked each question on the clean image and at every degradation level, and a
report with intervals and paired tests joined to the exact degradation of every item."""
