"""Data pipelines (TF-free): pretraining records from raw text, and the fine-tuning data.

Modules (none imports TensorFlow at module level, so worker processes stay small):
  corpus.py       input text -> token ids in an on-disk store (random access to any document)
  instances.py    the original's instance packing, SOP labels and n-gram whole-word masking
  records.py      the original's tf.train.Example features, TFRecord framing, atomic files
  sharding.py     seeds, unit order, output shards, bounded shuffle, resume marker
  pretraining.py  the run: config, workers, phases, progress, summary
  vocab.py        SentencePiece vocabulary training with the original recipe
  inspection.py   statistics and decoded instances of record files
  cache.py        fine-tuning feature caches named by a fingerprint of input, tokenizer, flags
  glue*.py        GLUE: the original's examples and features, feature cache, prediction files
  race.py         RACE: reader (official and all.txt layouts), the original's four-choice
                  features, the feature cache, per-level accuracy, predictions file
  squad*.py       SQuAD: reader, piece alignment, features, feature cache, n-best decoding, scores
"""


from albert.errors import DataError  # noqa: F401  (the data commands' error, re-exported)
