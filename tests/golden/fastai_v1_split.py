"""Golden values for tests/movielens_full.rs: fastai v1's split of the lesson's merged table.

fastai v1 (CollabDataBunch.from_df(rating_movie, seed=42, valid_pct=0.1)) seeds numpy's global
legacy RNG and takes np.random.permutation(n); the first int(0.1 * n) entries are the validation
rows. The merged table is in pandas 1.x order: rows grouped by movieId in order of first
appearance in u.data, stable within a group (reproduced here without pandas).

Usage: python3 tests/golden/fastai_v1_split.py ../shared/datasets/ml-100k
"""
import sys
import numpy as np

d = sys.argv[1]
ratings = [tuple(map(int, l.split("\t"))) for l in open(f"{d}/u.data")]
titles = {}
for line in open(f"{d}/u.item", encoding="latin-1"):
    f = line.split("|")
    titles[int(f[0])] = f[1]
groups, order = {}, []
for r in ratings:
    if r[1] not in groups:
        groups[r[1]] = []
        order.append(r[1])
    groups[r[1]].append(r)
merged = [r for m in order for r in groups[m]]
np.random.seed(42)
perm = np.random.permutation(len(merged))
cut = int(0.1 * len(merged))
valid, train = perm[:cut], np.setdiff1d(np.arange(len(merged)), perm[:cut])
print("first valid rows:", perm[:8].tolist())
print("first valid row:", merged[perm[0]][0], titles[merged[perm[0]][1]], merged[perm[0]][2])
print("users:", len({merged[i][0] for i in train}) + 1, "items:", len({titles[merged[i][1]] for i in train}) + 1)
print("unseen valid titles:", sum(titles[merged[i][1]] not in {titles[merged[j][1]] for j in train} for i in valid))
