"""Hub handles for tests: an original-style TF1 ALBERT hub module, or the session's TF2 export."""

from __future__ import annotations

import os
import shutil
from typing import Optional

import tensorflow as tf

from albert import checkpoint
from conftest import GOLDEN, MODEL_A
from support.exports import tiny_export

def write_tf1_hub_module(directory: str, checkpoint_dir: str = MODEL_A,
                         do_lower_case: bool = False, with_config: bool = True,
                         spm_model: Optional[str] = None) -> str:
  """An original-style TF1 ALBERT hub module with the checkpoint's weights (see the docstring);
  its tokenizer is the golden one (1,000 pieces), or `spm_model` as `30k-clean.model`."""
  _, values = checkpoint.read_checkpoint(checkpoint_dir)
  staging = directory + "_assets"
  os.makedirs(staging, exist_ok=True)
  asset_sources = ({"30k-clean.model": spm_model} if spm_model else
                   {"30k-clean.model": os.path.join(GOLDEN, "spm.model"),
                    "30k-clean.vocab": os.path.join(GOLDEN, "spm.vocab")})
  if with_config:
    asset_sources["albert_config.json"] = os.path.join(checkpoint_dir, "albert_config.json")
  for name, source in asset_sources.items():
    shutil.copyfile(source, os.path.join(staging, name))
  builder = tf.compat.v1.saved_model.Builder(directory)
  for index, tags in enumerate(([], ["train"])):
    graph = tf.Graph()
    with graph.as_default():
      for name, value in values.items():
        tf.compat.v1.get_variable(name, initializer=tf.constant(value), use_resource=False)
      assets = []
      for name in sorted(asset_sources):
        constant = tf.constant(os.path.join(staging, name), name=name.replace(".", "_"))
        tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS, constant)
        assets.append(constant)
      info = tf.compat.v1.saved_model.build_signature_def(
          inputs={}, outputs={
              "vocab_file": tf.compat.v1.saved_model.build_tensor_info(
                  assets[sorted(asset_sources).index("30k-clean.model")]),
              "do_lower_case": tf.compat.v1.saved_model.build_tensor_info(
                  tf.constant(do_lower_case))})
      with tf.compat.v1.Session(graph=graph) as session:
        session.run(tf.compat.v1.global_variables_initializer())
        add = (builder.add_meta_graph_and_variables if index == 0 else builder.add_meta_graph)
        kwargs = {"sess": session} if index == 0 else {}
        add(tags=tags, signature_def_map={"tokenization_info": info},
            assets_collection=tf.compat.v1.get_collection(
                tf.compat.v1.GraphKeys.ASSET_FILEPATHS), **kwargs)
  builder.save()
  with open(os.path.join(directory, "tfhub_module.pb"), "wb") as f:
    f.write(b"\x08\x03")  # ModuleDef(format=FORMAT_V3), as hub.Module exports carry
  shutil.rmtree(staging)
  return directory



def hub_handle(kind: str, tmp_path_factory):
  """(handle, checkpoint with the same body weights) for our TF2 export or a TF1 module."""
  if kind == "tf2_export":
    exported = tiny_export(tmp_path_factory)  # the session's export (shared with test_export)
    return exported.export_path, exported.checkpoint
  path = write_tf1_hub_module(str(tmp_path_factory.mktemp("tf1") / "albert_tf1_hub"))
  return path, os.path.join(MODEL_A, "model.ckpt-0")
