"""SQuAD v1.1 / v2.0 data (TF-free): examples, the original's token alignment, features
and caches, post-processing of predictions, the official metrics."""
