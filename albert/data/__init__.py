"""Data pipelines: pretraining instances and records from raw text (create_pretraining_data).

Modules (none imports TensorFlow at module level, so worker processes stay small):
  corpus.py       input text -> token ids in an on-disk store (random access to any document)
  instances.py    the original's instance packing, SOP labels and n-gram whole-word masking
  records.py      the original's tf.train.Example features, TFRecord framing, atomic files
  sharding.py     seeds, unit order, output shards, bounded shuffle, resume marker
  pretraining.py  the run: config, workers, phases, progress, summary
  vocab.py        SentencePiece vocabulary training with the original recipe
  inspection.py   statistics and decoded instances of record files
  squad*.py       SQuAD: reader, piece alignment, features, feature cache, n-best decoding, scores
"""


from albert.errors import DataError  # noqa: F401  (the data commands' error, re-exported)
