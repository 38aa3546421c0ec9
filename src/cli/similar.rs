//! `fastcollab similar`: items whose factor vectors point the same way (cosine similarity).
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use fastcollab::load_learner;

use super::output::number;

#[derive(Args)]
pub struct SimilarArgs {
    /// The exported model (`train --export FILE`).
    #[arg(long)]
    model: PathBuf,
    /// The item, as named in the training data (an id or a title), or, for a model with item
    /// titles, by its exact title.
    #[arg(long, allow_negative_numbers = true)]
    item: String,
    /// How many items.
    #[arg(short = 'n', long = "n", default_value_t = 10)]
    n: usize,
    /// Write `item,rank,similar,score` (and `title`, the similar item's, for a model with item
    /// titles) as CSV here instead of printing a table.
    #[arg(long)]
    output: Option<PathBuf>,
}

pub fn run(a: SimilarArgs) -> Result<()> {
    let rec = load_learner(&a.model)?;
    let titled = rec.has_item_titles();
    let rows: Vec<Vec<String>> = rec
        .similar_items(&a.item, a.n)?
        .into_iter()
        .enumerate()
        .map(|(k, s)| {
            let mut row = vec![a.item.clone(), (k + 1).to_string(), s.item, number(s.score, a.output.as_deref())];
            if titled {
                row.push(s.title.unwrap_or_default());
            }
            row
        })
        .collect();
    let header = ["item", "rank", "similar", "score", "title"];
    super::output::emit(&header[..if titled { 5 } else { 4 }], &rows, a.output.as_deref())
}
