"""Shared test set-up: quiet TensorFlow, paths to the test data, golden fixtures."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tf_keras

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TESTS_DIR)
TESTDATA = os.path.join(TESTS_DIR, "testdata")
GOLDEN = os.path.join(TESTDATA, "golden")
MODEL_A = os.path.join(GOLDEN, "model_A")
CONFIGS = os.path.join(REPO_DIR, "configs")


@pytest.fixture(autouse=True)
def _fresh_keras_state():
  """Each test starts with a clean Keras session, the float32 policy and fixed seeds."""
  tf_keras.backend.clear_session()
  tf_keras.mixed_precision.set_global_policy("float32")
  tf_keras.utils.set_random_seed(1234)
  yield
  tf_keras.mixed_precision.set_global_policy("float32")


def golden_arrays(variant: str = "init"):
  """The golden `outputs.npz` of model_A (`init`) or model_A/sharp (`sharp`)."""
  directory = MODEL_A if variant == "init" else os.path.join(MODEL_A, "sharp")
  with np.load(os.path.join(directory, "outputs.npz")) as data:
    return {k: data[k] for k in data.files}


def randomize(model, seed: int = 0, scale: float = 0.2):
  """Every variable to seeded noise: kernels N(0, scale^2), biases/betas N(0, 0.05^2), gammas 1 + N(0, 0.1^2)."""
  rng = np.random.RandomState(seed)
  for var in sorted(model.weights, key=lambda v: v.name):
    name = var.name
    if name.endswith(("bias:0", "beta:0")):
      value = rng.normal(0, 0.05, var.shape)
    elif name.endswith("gamma:0"):
      value = 1 + rng.normal(0, 0.1, var.shape)
    else:
      value = rng.normal(0, scale, var.shape)
    var.assign(value.astype(np.float32))


def load_script(name: str):
  """The module of a program under scripts/ (they are files, not package modules)."""
  import importlib.util
  path = os.path.join(REPO_DIR, "scripts", f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"scripts_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
