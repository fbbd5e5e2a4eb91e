"""Pretraining data (TF-free): the create_pretraining_data job, the corpus reader, the
original's instance algorithm, sharding and resume, vocabulary training, inspection."""
