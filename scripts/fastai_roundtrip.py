#!/usr/bin/env python3
"""Load a model exported by `fastcollab train --export FILE` into fastai's own EmbeddingDotBias (or
EmbeddingNN, fastai v2's layout) with `load_state_dict`, predict the pairs fastcollab predicted,
and compare.

Optional: it needs Python with torch, safetensors and fastai (v2). The exported file alone is
enough: the vocabularies, which map names to rows, are in its metadata.

    fastcollab train --export lesson.safetensors
    fastcollab export-split --out split && head -1001 split/valid.csv > pairs.csv
    fastcollab predict --model lesson.safetensors --input pairs.csv --output ours.csv
    python3 scripts/fastai_roundtrip.py lesson.safetensors ours.csv

Prints a JSON line with the largest absolute difference; exits 1 when it exceeds --tol (1e-5). With
`--printed FILE` (the model as fastcollab prints it), also exits 1 unless that is fastai's print.
"""
import argparse
import csv
import json
import sys

import fastai
import torch
from fastai.collab import EmbeddingDotBias, EmbeddingNN
from safetensors import safe_open

p = argparse.ArgumentParser()
p.add_argument("model", help="the exported .safetensors file")
p.add_argument("predictions", help="CSV with user,item,prediction columns (fastcollab predict --output)")
p.add_argument("--tol", type=float, default=1e-5)
p.add_argument("--printed", help="a file with the model as fastcollab prints it: must be fastai's print(model)")
a = p.parse_args()

with safe_open(a.model, "pt") as f:
    meta = f.metadata()
    spec = json.loads(meta["model"])
    # The model's tensors only (the file's other tensors, e.g. u32 seen.items, are not fastai's).
    tensors = {n: f.get_tensor(n) for n in f.keys() if not n.startswith(("seen.", "item."))}
vocab = json.loads(meta["vocab"])
n_users, n_items = len(vocab["user"]), len(vocab["item"])
# Whole numbers as ints, as the lesson writes y_range=(0, 5.5): the same function, and fastai then
# prints SigmoidRange(low=0, high=5.5) as fastcollab does.
y_range = tuple(int(v) if float(v).is_integer() else v for v in spec["y_range"]) if spec["y_range"] else None
if spec["kind"] == "EmbeddingDotBias":
    model = EmbeddingDotBias(spec["n_factors"], n_users, n_items, y_range=y_range)
    model.load_state_dict(tensors)
elif spec["kind"] == "EmbeddingNN" and spec["layout"] == "v2":
    eu, ei = spec["emb_szs"]
    ps = (spec["ps"] + [0.0] * len(spec["layers"]))[: len(spec["layers"])]
    model = EmbeddingNN([(n_users, eu), (n_items, ei)], layers=spec["layers"], ps=ps,
                        embed_p=spec["emb_drop"], use_bn=spec["use_bn"], y_range=y_range)
    # fastai's unused `bn_cont` (BatchNorm1d(0)) and BatchNorm's step counters are not exported.
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    left = [n for n in missing if not (n.startswith("bn_cont.") or n.endswith("num_batches_tracked"))]
    if left or unexpected:
        sys.exit(f"{a.model}: missing {left}, unexpected {unexpected}")
else:
    sys.exit(f"{a.model} holds a {spec['kind']} ({spec.get('layout')}); this script loads EmbeddingDotBias "
             "and fastai v2's EmbeddingNN")
model.eval()
if a.printed:
    with open(a.printed) as f:
        printed = f.read().strip()
    if printed != str(model):
        sys.exit(f"{a.printed} prints the model otherwise than fastai:\n{printed}\n--- fastai:\n{model}")

users = {name: i for i, name in enumerate(vocab["user"])}
items = {name: i for i, name in enumerate(vocab["item"])}
with open(a.predictions, newline="") as f:
    rows = list(csv.DictReader(f))
x = torch.tensor([[users.get(r["user"], 0), items.get(r["item"], 0)] for r in rows])
with torch.no_grad():
    theirs = model(x).flatten()
ours = torch.tensor([float(r["prediction"]) for r in rows])
diff = (theirs - ours).abs().max().item()
print(json.dumps({"pairs": len(rows), "max_abs_diff": diff, "tol": a.tol, "fastai": fastai.__version__,
                  "torch": torch.__version__}))
sys.exit(0 if diff <= a.tol else 1)
