//! Reading what a trained model learned: biases and factors by name, most-rated items, and
//! ranked tables. Read-only: nothing here changes the model or moves it between devices.
use std::fmt;

use tch::{Device, Kind, Tensor};

use crate::data::table::Table;
use crate::data::vocab::Vocab;
use crate::error::{Error, Result};
use crate::learner::Learner;
use crate::model::CollabModel;

/// The row of `name` in `vocab`, or an error naming close matches.
pub fn lookup(vocab: &Vocab, name: &str, is_item: bool) -> Result<u32> {
    vocab.get(name).ok_or_else(|| Error::UnknownName {
        kind: if is_item { "item" } else { "user" },
        name: name.to_string(),
        close: vocab.closest(name, 3),
    })
}

fn rows<S: AsRef<str>>(vocab: &Vocab, names: &[S], is_item: bool) -> Result<Tensor> {
    let idx = names.iter().map(|n| lookup(vocab, n.as_ref(), is_item).map(i64::from)).collect::<Result<Vec<_>>>()?;
    Ok(Tensor::from_slice(&idx))
}

/// The biases of `model`'s named items (`is_item`, names from `vocab`) or users, shape `[len]`, on
/// the CPU: [`Learner::bias`], and the same for an exported model.
pub(crate) fn bias_of<S: AsRef<str>>(model: &CollabModel, vocab: &Vocab, names: &[S], is_item: bool) -> Result<Tensor> {
    let CollabModel::DotBias(m) = model else {
        return Err(Error::Unsupported("bias() needs an EmbeddingDotBias model; EmbeddingNN has no biases".into()));
    };
    let table = if is_item { &m.i_bias } else { &m.u_bias };
    let idx = rows(vocab, names, is_item)?;
    Ok(tch::no_grad(|| table.to(Device::Cpu).index_select(0, &idx).squeeze_dim(1).to_kind(Kind::Float)))
}

/// The factor vectors of `model`'s named items or users, shape `[len, n_factors]`, on the CPU:
/// [`Learner::weight`], and the same for an exported model.
pub(crate) fn weight_of<S: AsRef<str>>(
    model: &CollabModel,
    vocab: &Vocab,
    names: &[S],
    is_item: bool,
) -> Result<Tensor> {
    let idx = rows(vocab, names, is_item)?;
    Ok(tch::no_grad(|| model.weight_table(is_item).to(Device::Cpu).index_select(0, &idx)))
}

impl Learner {
    /// The learned biases of the named items (`is_item`) or users, shape `[len]`, on the CPU.
    pub fn bias<S: AsRef<str>>(&self, names: &[S], is_item: bool) -> Result<Tensor> {
        bias_of(&self.model, self.vocab(is_item), names, is_item)
    }

    /// The learned factor vectors of the named items or users, shape `[len, n_factors]`, on the CPU.
    pub fn weight<S: AsRef<str>>(&self, names: &[S], is_item: bool) -> Result<Tensor> {
        weight_of(&self.model, self.vocab(is_item), names, is_item)
    }

    fn vocab(&self, is_item: bool) -> &Vocab {
        if is_item {
            &self.data.item_vocab
        } else {
            &self.data.user_vocab
        }
    }
}

/// Items by number of ratings, most first (ties by name), as `(name, count, mean rating)`.
pub fn most_rated(table: &Table, item: &str, rating: &str) -> Result<Vec<(String, usize, f64)>> {
    let mut stats: Vec<(String, usize, f64)> =
        table.group_stats(item, rating)?.into_iter().map(|g| (g.key.to_string(), g.count, g.mean)).collect();
    stats.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(stats)
}

/// `(value, name)` pairs sorted by value, lowest first.
pub fn ranked<S: AsRef<str>>(values: &Tensor, names: &[S]) -> Vec<(f64, String)> {
    let v = Vec::<f64>::try_from(&values.to_kind(Kind::Double).flatten(0, -1)).unwrap_or_default();
    let mut pairs: Vec<(f64, String)> = v.into_iter().zip(names.iter().map(|n| n.as_ref().to_string())).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    pairs
}

/// The lowest and highest `n` of values ranked by [`ranked`], one per line with the item's mean
/// rating from [`most_rated`]'s statistics: the lesson's tables of item biases and of PCA factors.
pub struct Extremes<'a> {
    /// What the values are, for the headings (e.g. "item bias", "fac0").
    pub what: &'a str,
    /// What the names are, for the headings (e.g. "title", "item").
    pub name: &'a str,
    /// `(value, name)`, lowest first.
    pub ranked: &'a [(f64, String)],
    /// `(name, count, mean rating)` per item; a name without one shows `-`.
    pub stats: &'a [(String, usize, f64)],
    /// Lines per end.
    pub n: usize,
}

impl fmt::Display for Extremes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mean = |name: &str| self.stats.iter().find(|s| s.0 == name).map_or("-".into(), |s| format!("{:.3}", s.2));
        let ends: [(&str, Vec<&(f64, String)>); 2] = [
            ("lowest", self.ranked.iter().take(self.n).collect()),
            ("highest", self.ranked.iter().rev().take(self.n).collect()),
        ];
        for (end, rows) in ends {
            writeln!(f, "{}, {end} {} (value, {}, mean rating):", self.what, rows.len(), self.name)?;
            for (value, name) in rows {
                writeln!(f, "  {value:>8.4}  {name}  {}", mean(name))?;
            }
        }
        Ok(())
    }
}
