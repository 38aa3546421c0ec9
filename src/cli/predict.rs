//! `fastcollab predict`: ratings for (user, item) pairs from a CSV file.
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use fastcollab::{load_learner, metrics, read_delimited, ReadOptions};

use super::output::number;

#[derive(Args)]
pub struct PredictArgs {
    /// The exported model (`train --export FILE`).
    #[arg(long)]
    model: PathBuf,
    /// CSV with a header and the user and item columns, named as in the training data (e.g.
    /// `userId,title`) or `user,item` (or `user,title` for a model with item titles). With a rating
    /// column too (named as in the training data, or `rating`), the predictions' MSE, RMSE and MAE
    /// against it are printed on stderr.
    #[arg(long)]
    input: PathBuf,
    /// Write `user,item,prediction` as CSV here instead of printing a table.
    #[arg(long)]
    output: Option<PathBuf>,
}

pub fn run(a: PredictArgs) -> Result<()> {
    let rec = load_learner(&a.model)?;
    let table = read_delimited(&a.input, &ReadOptions::sniffed(&a.input)?)?;
    let pick = |what: &str, names: &[&str]| -> Result<Vec<String>> {
        let col = table.column(super::column_of(&table, &a.input, what, names)?)?;
        Ok((0..table.len()).map(|r| col.value(r).to_string()).collect())
    };
    let users = pick("a user", &[&rec.meta.names[0], "user"])?;
    let items = pick("an item", &super::item_columns(&rec))?;
    let pairs: Vec<(&str, &str)> = users.iter().map(String::as_str).zip(items.iter().map(String::as_str)).collect();
    let (preds, unmatched) = rec.predict_names(&pairs);
    if unmatched.unknown > 0 {
        eprintln!(
            "{} of {} rows name a user or item the model does not know: predicted through #na#, as fastai does",
            unmatched.unknown,
            pairs.len()
        );
    }
    if let Some(title) = &unmatched.shared_title {
        eprintln!(
            "{} of {} rows name an item by a title several items share (first: {title:?}): predicted through #na#; \
             name those items by id",
            unmatched.ambiguous,
            pairs.len()
        );
    }
    if let Some(name) = [&rec.meta.names[2][..], "rating"].into_iter().find(|n| table.column(n).is_ok()) {
        let targets = super::ratings(&table, name, &a.input)?;
        let (p, t) = (&preds[..], &targets[..]);
        eprintln!(
            "against column {name:?} ({} rows): MSE {:.6}, RMSE {:.6}, MAE {:.6}",
            t.len(),
            metrics::mse(p, t),
            metrics::rmse(p, t),
            metrics::mae(p, t)
        );
    }
    let rows: Vec<Vec<String>> = pairs
        .iter()
        .zip(&preds)
        .map(|((u, i), &p)| vec![u.to_string(), i.to_string(), number(p, a.output.as_deref())])
        .collect();
    super::output::emit(&["user", "item", "prediction"], &rows, a.output.as_deref())
}
