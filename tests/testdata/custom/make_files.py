"""Writes the custom-task test files of this folder from the GLUE rows in ../glue (run from the
repository root: `python tests/testdata/custom/make_files.py`); also data/examples/."""

import csv
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
GLUE = os.path.join(HERE, "..", "glue")
EXAMPLES = os.path.join(HERE, "..", "..", "..", "data", "examples")


def rows(task, name, header=True):
  with open(os.path.join(GLUE, task, name), encoding="utf-8-sig", newline="\n") as f:
    lines = [line.rstrip("\n").split("\t") for line in f]
  return lines[1:] if header else lines


def write_csv(path, header, body):
  with open(path, "w", encoding="utf-8", newline="") as f:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(body)


# MRPC as CSV: other column names, label names, quoted commas (MRPC's own), a quote and a line
# break inside a field (the second row of train, written over two lines).
NAMES = {"0": "different", "1": "paraphrase"}
for split in ("train", "dev"):
  body = [[f"{r[1]}-{r[2]}", r[3], r[4], NAMES[r[0]]] for r in rows("MRPC", f"{split}.tsv")]
  if split == "train":
    body[1][1] = body[1][1].replace(" before ", " before\n", 1)
  write_csv(os.path.join(HERE, f"mrpc_{split}.csv"), ["pair_id", "first", "second", "verdict"],
            body)
write_csv(os.path.join(HERE, "mrpc_test.csv"), ["pair_id", "first", "second"],
          [[f"{r[1]}-{r[2]}", r[3], r[4]] for r in rows("MRPC", "test.tsv")])

# RTE as JSON Lines, string labels, the default column names sentence1 / sentence2.
for split in ("train", "dev", "test"):
  with open(os.path.join(HERE, f"rte_{split}.jsonl"), "w", encoding="utf-8") as f:
    for r in rows("RTE", f"{split}.tsv"):
      record = {"id": f"rte-{split}-{r[0]}", "sentence1": r[1], "sentence2": r[2]}
      if split != "test":
        record["label"] = r[3]
      f.write(json.dumps(record, ensure_ascii=False) + "\n")


# Multi-label TSV from real sentences (CoLA, SST-2, RTE premises): labels by rules a small
# model can learn: short (8 words or fewer) or long, negation (not, no, never, n't), digits.
def labels_of(text):
  words = text.split()
  found = ["short" if len(words) <= 8 else "long"]
  if re.search(r"\b(not|no|never)\b|n't", text.lower()):
    found.append("negation")
  if re.search(r"\d", text):
    found.append("digits")
  return "|".join(found)


for split in ("train", "dev", "test"):
  texts = [r[3] for r in rows("CoLA", f"{split}.tsv", header=False)] if split != "test" else \
      [r[1] for r in rows("CoLA", "test.tsv")]
  texts += [r[0] if split != "test" else r[1] for r in rows("SST-2", f"{split}.tsv")]
  texts += [r[1] for r in rows("RTE", f"{split}.tsv")]
  with open(os.path.join(HERE, f"topics_{split}.tsv"), "w", encoding="utf-8") as f:
    f.write("text\ttags\n" if split != "test" else "text\n")
    for text in texts:
      f.write(f"{text}\t{labels_of(text)}\n" if split != "test" else f"{text}\n")

# data/examples/sentiment: SST-2's rows as CSV with label names (the README's example).
os.makedirs(os.path.join(EXAMPLES, "sentiment"), exist_ok=True)
SENTIMENT = {"0": "negative", "1": "positive"}
for split in ("train", "dev"):
  write_csv(os.path.join(EXAMPLES, "sentiment", f"{split}.csv"), ["text", "label"],
            [[r[0], SENTIMENT[r[1]]] for r in rows("SST-2", f"{split}.tsv")])
write_csv(os.path.join(EXAMPLES, "sentiment", "test.csv"), ["id", "text"],
          [[f"review-{r[0]}", r[1]] for r in rows("SST-2", "test.tsv")])
