"""ALBERT for TensorFlow 2 (tf_keras)."""
