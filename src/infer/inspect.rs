//! What an exported model learned about its items, read as the lesson reads a learner: the most
//! rated items with their mean rating, their biases and their factor vectors, by name. Counts and
//! means come from the training ratings the file keeps.
use tch::Tensor;

use super::Recommender;
use crate::error::Result;
use crate::interpret::{bias_of, weight_of};

impl Recommender {
    /// Items by number of training ratings, most first (ties by name), as `(name, count, mean
    /// rating)`: [`crate::interpret::most_rated`] over the training ratings the file keeps. Items
    /// without a training rating (and `#na#`) are left out.
    pub fn most_rated(&self) -> Vec<(String, usize, f64)> {
        let n = self.items.len();
        let (mut count, mut sum) = (vec![0usize; n], vec![0.0f64; n]);
        for (&item, &rating) in self.seen.items.iter().zip(&self.seen.ratings) {
            count[item as usize] += 1;
            sum[item as usize] += rating as f64;
        }
        let mut stats: Vec<(String, usize, f64)> = (1..n)
            .filter(|&i| count[i] > 0)
            .map(|i| (self.items.name(i).to_string(), count[i], sum[i] / count[i] as f64))
            .collect();
        stats.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        stats
    }

    /// The biases of the named items, shape `[len]` (EmbeddingDotBias; as `Learner::bias`).
    pub fn item_bias<S: AsRef<str>>(&self, names: &[S]) -> Result<Tensor> {
        bias_of(&self.model, &self.items, names, true)
    }

    /// The factor vectors of the named items, shape `[len, n_factors]` (EmbeddingNN: their
    /// embeddings; as `Learner::weight`).
    pub fn item_weight<S: AsRef<str>>(&self, names: &[S]) -> Result<Tensor> {
        weight_of(&self.model, &self.items, names, true)
    }
}
