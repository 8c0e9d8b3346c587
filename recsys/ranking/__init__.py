"""Ranker rows (one assembly for training and serving), two-headed calibrated rankers, the model bundle.

See README.md in this folder.
"""
