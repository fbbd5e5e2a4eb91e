"""The Hugging Face bridge: ALBERT folders of the HF hub (config.json + safetensors) in and out.

`names`: the HF <-> original TF1 weight names and `config.json` <-> `albert_config.json`
(numpy only). `folder`: reading an HF folder as a checkpoint in TF1 names (what
`albert.checkpoint` does with `--init_checkpoint=<HF folder>`) and writing one (numpy +
safetensors, no torch). `convert`: `convert_checkpoint.py`'s two directions, each checked by
reading its output back. See docs/huggingface.md.
"""
