//! Using a trained model: [`load_learner`] reads an exported file (no data needed) into a
//! [`Recommender`] that predicts, recommends, finds similar items and folds in new users. This
//! layer stands on the model and the vocabularies only, never on a `Learner` or a data bunch.
pub mod export;
pub mod fold_in;
pub mod format;
pub mod inspect;
pub mod rank;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tch::{nn, Device, Kind, Tensor};

use crate::data::vocab::Vocab;
use crate::error::{Error, Result};
use crate::interpret::lookup;
use crate::model::init::InitRng;
use crate::model::{CollabModel, DotBiasConfig, EmbeddingDotBias, EmbeddingNN, EmbeddingNNConfig};
pub use fold_in::{fold_in_rows, predict_folded, FoldIn, FoldedUser};
pub use format::{ExportMeta, ModelSpec};
pub use rank::Seen;

/// From this many users on, [`Recommender::recommend_rows`] shows a progress bar (on a terminal).
const MANY_USERS: usize = 32_768;

/// A trained model with its vocabularies and training interactions, ready for inference on the
/// CPU.
pub struct Recommender {
    /// The file's metadata: model, vocabularies, provenance, training, metrics.
    pub meta: ExportMeta,
    /// The model (its tensors live in `vs`).
    pub model: CollabModel,
    /// The model's variables.
    pub vs: nn::VarStore,
    users: Vocab,
    items: Vocab,
    seen: Seen,
    item_count: Vec<i64>,
    path: PathBuf,
    /// Item rows by display title, built on first use.
    by_title: OnceLock<HashMap<String, Vec<u32>>>,
}

/// An item with its score.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The item's name (id or title).
    pub item: String,
    /// The item's display title, when the model has titles for its items and this one has one.
    pub title: Option<String>,
    /// Predicted rating, or cosine similarity for [`Recommender::similar_items`].
    pub score: f32,
}

/// The pairs [`Recommender::predict_names`] could not match, each predicted through `#na#`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unmatched {
    /// Pairs naming a user or an item the model does not know.
    pub unknown: usize,
    /// Pairs naming a known user and an item by a title several items share (name it by id).
    pub ambiguous: usize,
    /// The first such shared title.
    pub shared_title: Option<String>,
}

/// Reads a file written by `Learner::export` (fastai's `load_learner`). Truncated, corrupt or
/// foreign files, and files of a newer format version, are errors that name the file.
pub fn load_learner(path: &Path) -> Result<Recommender> {
    let read = format::read(path)?;
    let bad = |message: String| Error::Model { path: path.to_path_buf(), message };
    let meta = read.meta.clone();
    let (n_users, n_items) = (meta.vocab.user.len(), meta.vocab.item.len());
    if n_users == 0 || n_items == 0 {
        return Err(bad("has empty vocabularies".into()));
    }
    let vs = nn::VarStore::new(Device::Cpu);
    let model = match &meta.model {
        ModelSpec::EmbeddingDotBias { n_factors, y_range } => {
            let cfg = DotBiasConfig { n_factors: *n_factors, y_range: *y_range };
            CollabModel::DotBias(EmbeddingDotBias::new(&vs.root(), n_users, n_items, &cfg, &mut InitRng::new(0)))
        }
        ModelSpec::EmbeddingNn { emb_szs, layers, ps, emb_drop, use_bn, layout, y_range } => {
            let cfg = EmbeddingNNConfig {
                emb_szs: Some(*emb_szs),
                layers: layers.clone(),
                ps: ps.clone(),
                emb_drop: *emb_drop,
                y_range: *y_range,
                use_bn: *use_bn,
                layout: *layout,
            };
            CollabModel::Nn(EmbeddingNN::new(&vs.root(), n_users, n_items, &cfg, &mut InitRng::new(0)))
        }
    };
    for (name, var) in vs.variables() {
        let shape: Vec<usize> = var.size().iter().map(|&d| d as usize).collect();
        let name = model.name_in_file(&name, |n| read.shape(n).is_some());
        let values = if var.kind() == Kind::Int64 {
            Tensor::from_slice(&read.i64(&name, &shape, path)?)
        } else {
            Tensor::from_slice(&read.f32(&name, &shape, path)?)
        };
        tch::no_grad(|| var.shallow_clone().copy_(&values.view(var.size().as_slice())));
    }
    let indptr = read.i64("seen.indptr", &[n_users + 1], path)?;
    let nnz = read.shape("seen.items").and_then(|s| s.first().copied()).unwrap_or(0);
    let items = read.rows("seen.items", &[nnz], n_items, path)?;
    let ratings = read.f32("seen.ratings", &[nnz], path)?;
    let ok =
        indptr.first() == Some(&0) && indptr.windows(2).all(|w| w[0] <= w[1]) && indptr.last() == Some(&(nnz as i64));
    if !ok {
        return Err(bad("has inconsistent seen.indptr".into()));
    }
    let seen = Seen { indptr: indptr.iter().map(|&x| x as usize).collect(), items, ratings };
    let item_count = read.i64("item.count", &[n_items], path)?;
    if let Some(titles) = meta.item_titles.as_ref().filter(|t| t.len() != n_items) {
        return Err(bad(format!("has {} item titles for {n_items} items", titles.len())));
    }
    let users = Vocab::from_names(meta.vocab.user.clone(), meta.vocab.user_numeric);
    let items = Vocab::from_names(meta.vocab.item.clone(), meta.vocab.item_numeric);
    let (path, by_title) = (path.to_path_buf(), OnceLock::new());
    Ok(Recommender { meta, model, vs, users, items, seen, item_count, path, by_title })
}

impl Recommender {
    /// The file this model was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The user vocabulary (row order, `#na#` first).
    pub fn users(&self) -> &Vocab {
        &self.users
    }

    /// The item vocabulary (row order, `#na#` first).
    pub fn items(&self) -> &Vocab {
        &self.items
    }

    /// The items each user rated in training, with the ratings.
    pub fn seen(&self) -> &Seen {
        &self.seen
    }

    /// How many training ratings each item row had.
    pub fn item_count(&self) -> &[i64] {
        &self.item_count
    }

    /// The row of user `name`; an unknown user is an error with close matches and a hint.
    pub fn user_row(&self, name: &str) -> Result<u32> {
        lookup(&self.users, name, false)
    }

    /// The row of item `name`: an item id (or title, for a model trained on titles), else, for a
    /// model with display titles, the one item with that exact title. An unknown item is an error
    /// with close matches; a title several items share is an error naming their ids.
    pub fn item_row(&self, name: &str) -> Result<u32> {
        let by_id = lookup(&self.items, name, true);
        if by_id.is_ok() {
            return by_id;
        }
        match self.titled(name) {
            [] => by_id,
            [row] => Ok(*row),
            rows => Err(Error::AmbiguousTitle {
                title: name.to_string(),
                ids: rows.iter().map(|&r| self.items.name(r as usize).to_string()).collect(),
            }),
        }
    }

    /// The item rows whose display title is exactly `title` (none for a model without titles),
    /// from an index built on first use.
    fn titled(&self, title: &str) -> &[u32] {
        let index = self.by_title.get_or_init(|| {
            let mut index: HashMap<String, Vec<u32>> = HashMap::new();
            for (r, t) in self.meta.item_titles.iter().flatten().enumerate().skip(1) {
                index.entry(t.clone()).or_default().push(r as u32);
            }
            index
        });
        index.get(title).map_or(&[], Vec::as_slice)
    }

    /// The display title of item row `row`, when the model has titles and this item has one.
    pub fn item_title(&self, row: u32) -> Option<&str> {
        let title = self.meta.item_titles.as_ref()?.get(row as usize)?;
        (!title.is_empty()).then_some(title.as_str())
    }

    /// Whether the model carries display titles for its items.
    pub fn has_item_titles(&self) -> bool {
        self.meta.item_titles.is_some()
    }

    /// Item row `row` with `score`, named and titled.
    fn scored(&self, row: u32, score: f32) -> Scored {
        let title = self.item_title(row).map(str::to_string);
        Scored { item: self.items.name(row as usize).to_string(), title, score }
    }

    /// Predicted ratings for (user row, item row) pairs, through [`CollabModel::predict_rows`] (the
    /// same computation, so the same bits, as the learner's predictions).
    pub fn predict_rows(&self, users: &[u32], items: &[u32]) -> Vec<f32> {
        self.model.predict_rows(users, items)
    }

    /// The predicted rating of `user` for `item` (names as in the training data).
    pub fn predict(&self, user: &str, item: &str) -> Result<f32> {
        Ok(self.predict_rows(&[self.user_row(user)?], &[self.item_row(item)?])[0])
    }

    /// Predictions for pairs of names (items by id, or by a title only one item has). A pair the
    /// model cannot match (an unknown user or item, or a title several items share) is predicted
    /// through `#na#` (as fastai does for new rows) and counted in the second value.
    pub fn predict_names<S: AsRef<str>>(&self, pairs: &[(S, S)]) -> (Vec<f32>, Unmatched) {
        let mut unmatched = Unmatched::default();
        let (users, items): (Vec<u32>, Vec<u32>) = pairs
            .iter()
            .map(|(u, i)| {
                let (user, i) = (self.users.get(u.as_ref()), i.as_ref());
                // An item by id, else by a title only it has; `Err(true)`: a title several share.
                let item = self.items.get(i).ok_or(()).or_else(|()| match self.titled(i) {
                    &[row] => Ok(row),
                    rows => Err(rows.len() > 1),
                });
                match (user, item) {
                    (Some(_), Err(true)) => {
                        unmatched.ambiguous += 1;
                        unmatched.shared_title.get_or_insert_with(|| i.to_string());
                    }
                    (None, _) | (_, Err(_)) => unmatched.unknown += 1,
                    _ => {}
                }
                (user.unwrap_or(0), item.unwrap_or(0))
            })
            .unzip();
        (self.predict_rows(&users, &items), unmatched)
    }

    /// The `n` best items for `user` by predicted rating, best first, excluding what they rated in
    /// training unless `include_seen`. An unknown user is an error suggesting close matches and
    /// fold-in.
    pub fn recommend(&self, user: &str, n: usize, include_seen: bool) -> Result<Vec<Scored>> {
        Ok(self.recommend_rows(&[self.recommended_user(user)?], n, include_seen, 0.0).pop().unwrap_or_default())
    }

    /// The row of a user to recommend for; an unknown user is an error suggesting close matches
    /// and fold-in.
    pub fn recommended_user(&self, user: &str) -> Result<u32> {
        self.users
            .get(user)
            .ok_or_else(|| Error::UnknownUser { name: user.to_string(), close: self.users.closest(user, 3) })
    }

    /// [`Recommender::recommend`] for user rows. With a finite `popularity` α ≠ 0 the items are
    /// ordered by predicted rating + α·ln(1 + training count) (the ranking option of `cv
    /// --ranking` when α > 0; α < 0 pushes the long tail), and still scored by predicted rating; a
    /// non-finite α is ignored.
    pub fn recommend_rows(&self, users: &[u32], n: usize, include_seen: bool, popularity: f64) -> Vec<Vec<Scored>> {
        let mut out = Vec::with_capacity(users.len());
        let Ok(()) = self.recommend_each(users, n, include_seen, popularity, |_, list| {
            out.push(list);
            Ok::<(), std::convert::Infallible>(())
        });
        out
    }

    /// [`Recommender::recommend_rows`], handing each user's list to `each` (users in order) as soon
    /// as its chunk of users is ranked, so that lists for millions of users can be written out
    /// without holding them all; stops at the first error `each` returns. From 32,768 users on, a
    /// progress bar shows on a terminal.
    pub fn recommend_each<E>(
        &self,
        users: &[u32],
        n: usize,
        include_seen: bool,
        popularity: f64,
        mut each: impl FnMut(u32, Vec<Scored>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let exclude = (!include_seen).then_some(&self.seen);
        let bonus: Option<Vec<f32>> = (popularity != 0.0 && popularity.is_finite())
            .then(|| self.item_count.iter().map(|&c| (popularity * (c as f64).ln_1p()) as f32).collect());
        // Each user is ranked on their own: chunks change no result.
        let bar = (users.len() >= MANY_USERS).then(|| crate::progress::count_bar(users.len() as u64, "ranking users"));
        for chunk in users.chunks(MANY_USERS / 4) {
            let top = match &bonus {
                Some(bonus) => rank::top_n_with_bonus(&self.model, chunk, n, exclude, bonus),
                None => rank::top_n(&self.model, chunk, n, exclude),
            };
            let pairs: (Vec<u32>, Vec<u32>) =
                chunk.iter().zip(&top).flat_map(|(&u, row)| row.iter().map(move |&(i, _)| (u, i))).unzip();
            let mut scores = self.predict_rows(&pairs.0, &pairs.1).into_iter();
            for (&u, row) in chunk.iter().zip(&top) {
                let named = |(&(i, _), score)| self.scored(i, score);
                each(u, row.iter().zip(scores.by_ref()).map(named).collect())?;
            }
            if let Some(bar) = &bar {
                bar.inc(chunk.len() as u64);
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok(())
    }

    /// The `n` items whose factor vectors are closest to `item`'s by cosine similarity (the
    /// item itself and `#na#` excluded).
    pub fn similar_items(&self, item: &str, n: usize) -> Result<Vec<Scored>> {
        let i = self.item_row(item)?;
        let table = self.model.weight_table(true);
        let sims = tch::no_grad(|| {
            let normed = table / table.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
            normed.matmul(&normed.get(i as i64).unsqueeze(1)).squeeze_dim(1)
        });
        let mut sims = Vec::<f32>::try_from(sims.to_kind(Kind::Float)).unwrap_or_default();
        sims[0] = f32::NEG_INFINITY;
        sims[i as usize] = f32::NEG_INFINITY;
        let mut order: Vec<usize> = (1..sims.len()).filter(|&j| sims[j] > f32::NEG_INFINITY).collect();
        order.sort_by(|&a, &b| sims[b].total_cmp(&sims[a]).then(a.cmp(&b)));
        Ok(order.into_iter().take(n).map(|j| self.scored(j as u32, sims[j])).collect())
    }

    /// Fold-in settings with this model's training `wd`, β2 and ε.
    pub fn fold_in_config(&self) -> FoldIn {
        let t = &self.meta.training;
        FoldIn::with_training(t.wd, t.beta2, t.eps)
    }

    /// A new user's row fitted to `ratings` (item name, rating); every item must be known.
    pub fn fold_in<S: AsRef<str>>(&self, ratings: &[(S, f32)], cfg: &FoldIn) -> Result<FoldedUser> {
        let items = ratings.iter().map(|(i, _)| self.item_row(i.as_ref())).collect::<Result<Vec<_>>>()?;
        let values: Vec<f32> = ratings.iter().map(|r| r.1).collect();
        Ok(fold_in_rows(&self.model, &items, &values, None, cfg))
    }

    /// A known user's row refitted to their training ratings plus `extra` ones, starting from the
    /// row they have.
    pub fn fold_in_user<S: AsRef<str>>(&self, user: &str, extra: &[(S, f32)], cfg: &FoldIn) -> Result<FoldedUser> {
        let u = self.user_row(user)? as usize;
        let mut items = self.seen.items(u).to_vec();
        let mut values = self.seen.ratings(u).to_vec();
        for (i, r) in extra {
            items.push(self.item_row(i.as_ref())?);
            values.push(*r);
        }
        let start = fold_in::user_row(&self.model, u as u32);
        Ok(fold_in_rows(&self.model, &items, &values, Some(start), cfg))
    }

    /// The `n` best items for a folded user, excluding `rated` item rows; ordered as
    /// [`Recommender::recommend_rows`] orders them for `popularity` (scores stay predicted ratings).
    pub fn recommend_folded(&self, user: &FoldedUser, n: usize, rated: &[u32], popularity: f64) -> Vec<Scored> {
        let mut excluded = vec![false; self.items.len()];
        for &i in rated {
            excluded[i as usize] = true;
        }
        let all: Vec<u32> = (1..self.items.len() as u32).filter(|&i| !excluded[i as usize]).collect();
        let scores = predict_folded(&self.model, user, &all);
        let alpha = if popularity.is_finite() { popularity } else { 0.0 };
        let bonus = |k: usize| (alpha * (self.item_count[all[k] as usize] as f64).ln_1p()) as f32;
        let ranked: Vec<f32> = (0..all.len()).map(|k| scores[k] + bonus(k)).collect();
        let mut order: Vec<usize> = (0..all.len()).collect();
        order.sort_by(|&a, &b| ranked[b].total_cmp(&ranked[a]).then(a.cmp(&b)));
        order.into_iter().take(n).map(|k| self.scored(all[k], scores[k])).collect()
    }
}
