#!/usr/bin/env python3
"""Train fastai on exactly the rows that `fastcollab export-split` wrote, with the lesson's
hyperparameters, and write what happened as JSON for `fastcollab compare` and `fastcollab bench`.

Optional: it needs Python with fastai (v1 or v2) and pandas. fastai v2 is set up to match v1's
math: a permutation data loader (not sampling with replacement), a train-only vocabulary,
Adam eps 1e-8 and the v1 one-cycle (pct_start 0.3, div_final 25e4). One torch thread, as in
fastcollab's benchmarks.

    fastcollab export-split --out /tmp/split
    python3 scripts/fastai_reference.py /tmp/split --json /tmp/split/fastai.json
"""
import argparse
import json
import time
from functools import partial

import pandas as pd
import torch
import fastai

p = argparse.ArgumentParser()
p.add_argument("split_dir", help="folder with train.csv and valid.csv")
p.add_argument("--json", help="write the results here")
p.add_argument("--item", default="title")
p.add_argument("--n-factors", type=int, default=40)
p.add_argument("--wd", type=float, default=0.1)
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--lr", type=float, default=5e-3)
p.add_argument("--bs", type=int, default=64)
p.add_argument("--seed", type=int, default=42)
p.add_argument("--use-nn", action="store_true", help="EmbeddingNN with layers [100, 50] (fastai v2 only)")
a = p.parse_args()

torch.set_num_threads(1)
torch.manual_seed(a.seed)
train = pd.read_csv(f"{a.split_dir}/train.csv")
valid = pd.read_csv(f"{a.split_dir}/valid.csv")
df = pd.concat([train, valid], ignore_index=True)
n_train = len(train)
cols = ["userId", a.item]

if fastai.__version__.startswith("1."):
    from fastai.collab import CollabList, collab_learner
    from fastai.tabular import Categorify

    data = (CollabList.from_df(df, cat_names=cols, procs=[Categorify])
            .split_by_idx(list(range(n_train, len(df))))
            .label_from_df(cols="rating")
            .databunch(bs=a.bs))
    learn = collab_learner(data, n_factors=a.n_factors, y_range=(0, 5.5), wd=a.wd)
    start = time.time()
    learn.fit_one_cycle(a.epochs, a.lr)
    fit_seconds = time.time() - start
    nb = len(data.train_dl)
    train_loss = [float(learn.recorder.losses[(e + 1) * nb - 1]) for e in range(a.epochs)]
    valid_loss = [float(v) for v in learn.recorder.val_losses]
else:
    from fastai.collab import collab_learner, TabularCollab
    from fastai.data.block import TransformBlock
    from fastai.optimizer import Adam
    from fastai.tabular.core import Categorify, TabDataLoader

    splits = (list(range(n_train)), list(range(n_train, len(df))))
    to = TabularCollab(df, [Categorify], cols, y_names=["rating"], y_block=TransformBlock(),
                       splits=splits, reduce_memory=False)
    dls = to.dataloaders(path=".", bs=a.bs, dl_type=TabDataLoader)
    kw = dict(use_nn=True, layers=[100, 50]) if a.use_nn else dict(n_factors=a.n_factors)
    learn = collab_learner(dls, y_range=(0, 5.5), opt_func=partial(Adam, eps=1e-8), **kw)
    start = time.time()
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(a.epochs, a.lr, wd=a.wd, pct_start=0.3, div_final=25e4)
    fit_seconds = time.time() - start
    train_loss = [float(v[0]) for v in learn.recorder.values]
    valid_loss = [float(v[1]) for v in learn.recorder.values]

result = {"fastai_version": fastai.__version__, "torch_version": torch.__version__, "fit_seconds": fit_seconds,
          "train_loss": train_loss, "valid_loss": valid_loss, "n_train": n_train, "n_valid": len(valid),
          "hyperparameters": vars(a)}
print(json.dumps(result, indent=2))
if a.json:
    with open(a.json, "w") as f:
        json.dump(result, f, indent=2)
