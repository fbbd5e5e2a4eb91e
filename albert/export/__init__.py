"""Everything that writes or serves a model: the TF-Hub encoder SavedModel and TFLite, the
export_to_tfhub job, the in-graph preprocessing, versioned TF Serving folders, the
serving signatures of fine-tuned models and the Python answerers."""
