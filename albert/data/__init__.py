"""Data pipelines (TF-free): pretraining records from raw text, and the fine-tuning data.

No module here imports TensorFlow at module level, so worker processes stay small:
  records.py      the one tf.train.Example encoder, the pretraining format, TFRecord framing,
                  atomic record files
  cache.py        fine-tuning feature caches named by a fingerprint of input, tokenizer, flags
  workers.py      the one ordered process pool (fork where safe, spawn with __main__ hidden)
  pretraining/    create_pretraining_data: the job, corpus, instances, sharding and resuming,
                  vocab, inspection, progress and summary
  glue/           GLUE: the task table (a task is a row), reader, features, cache, submission
                  files, the original's recipes
  squad/          SQuAD: examples, piece alignment, features, cache, n-best decoding, scores
  race.py         RACE: reader (official and all.txt layouts), the original's four-choice
                  features, the feature cache, per-level accuracy, predictions file
The tokenizer, its `TokenizerSpec` and the one `preprocess_text` are `albert.tokenization`.
"""


from albert.errors import DataError  # noqa: F401  (the data commands' error, re-exported)
