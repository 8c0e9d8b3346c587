"""Batch features: the Spark job over the lake, point-in-time training sets, the Feature Store (see README.md)."""
