"""GLUE data (TF-free): the task table and its reader, feature conversion and caches,
the GLUE server's submission files, the original's per-task recipes."""
