//! `fastcollab recommend`: the best items for a user, for every user, or for a new user folded
//! in from their ratings.
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use fastcollab::infer::Scored;
use fastcollab::{load_learner, read_delimited, ReadOptions, Recommender};

use super::output::number;

#[derive(Args)]
pub struct RecommendArgs {
    /// The exported model (`train --export FILE`).
    #[arg(long)]
    model: PathBuf,
    /// The user, as named in the training data.
    #[arg(long, conflicts_with = "all", allow_negative_numbers = true)]
    user: Option<String>,
    /// Recommend for every user of the model (use with --output).
    #[arg(long)]
    all: bool,
    /// A CSV of ratings (`item,rating` columns, the training data's names, or `title,rating` for a
    /// model with item titles) of a user the model has never seen, folded in; with --user, extra
    /// ratings of that known user (or, for a name the model does not know, a new user by that name).
    #[arg(long, conflicts_with = "all")]
    ratings: Option<PathBuf>,
    /// How many items.
    #[arg(short = 'n', long = "n", default_value_t = 10)]
    n: usize,
    /// Also recommend items the user already rated.
    #[arg(long)]
    include_seen: bool,
    /// Order by predicted rating + ALPHA·ln(1 + training count) instead of the predicted rating
    /// alone (scores stay predicted ratings). `cv --ranking` chose ALPHA between 1 and 2 on
    /// ml-100k's base files, where it ranks better than both the model and MostPop. A negative
    /// ALPHA demotes popular items instead (more of the long tail).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    popularity: f64,
    /// Write `user,rank,item,score` (and `title`, for a model with item titles) as CSV here instead
    /// of printing a table.
    #[arg(long)]
    output: Option<PathBuf>,
}

/// The columns of the output: `title` last, for a model with item titles.
fn header(rec: &Recommender) -> &'static [&'static str] {
    let all = &["user", "rank", "item", "score", "title"];
    &all[..if rec.has_item_titles() { 5 } else { 4 }]
}

/// One user's recommendations as rows (scores in full for CSV into `output`), with titles when
/// `titled`.
fn rows<'a>(
    user: &str,
    recs: &'a [Scored],
    titled: bool,
    output: Option<&'a Path>,
) -> impl Iterator<Item = Vec<String>> + 'a {
    let user = user.to_string();
    recs.iter().enumerate().map(move |(k, s)| {
        let mut row = vec![user.clone(), (k + 1).to_string(), s.item.clone(), number(s.score, output)];
        if titled {
            row.push(s.title.clone().unwrap_or_default());
        }
        row
    })
}

pub fn run(a: RecommendArgs) -> Result<()> {
    if !a.popularity.is_finite() {
        bail!("--popularity must be a finite number, got {}", a.popularity);
    }
    let rec = load_learner(&a.model)?;
    if a.all {
        return recommend_all(&rec, &a);
    }
    let mut out: Vec<Vec<String>> = Vec::new();
    if let Some(path) = &a.ratings {
        let table = read_delimited(path, &ReadOptions::sniffed(path)?)?;
        let items = super::column_of(&table, path, "an item", &super::item_columns(&rec))?;
        let values = super::column_of(&table, path, "a rating", &[&rec.meta.names[2], "rating"])?;
        let values = super::ratings(&table, values, path)?;
        let items = table.column(items)?;
        let ratings: Vec<(String, f32)> = (0..table.len()).map(|r| (items.value(r).to_string(), values[r])).collect();
        let cfg = rec.fold_in_config();
        let start = Instant::now();
        // A known user's extra ratings refit their row; a name the model does not know is a new user.
        let known = a.user.as_deref().filter(|u| rec.users().get(u).is_some());
        let (name, folded) = match (known, &a.user) {
            (Some(u), _) => (u.to_string(), rec.fold_in_user(u, &ratings, &cfg)?),
            (None, Some(u)) => {
                eprintln!("user {u:?} is new to the model: folded in from these ratings alone");
                (u.clone(), rec.fold_in(&ratings, &cfg)?)
            }
            (None, None) => ("new".to_string(), rec.fold_in(&ratings, &cfg)?),
        };
        eprintln!("folded in {} ratings in {:.2} ms", ratings.len(), start.elapsed().as_secs_f64() * 1e3);
        let mut rated: Vec<u32> = ratings.iter().map(|(i, _)| rec.item_row(i)).collect::<fastcollab::Result<_>>()?;
        if let Some(u) = known {
            rated.extend_from_slice(rec.seen().items(rec.user_row(u)? as usize));
        }
        if a.include_seen {
            rated.clear();
        }
        let recs = rec.recommend_folded(&folded, a.n, &rated, a.popularity);
        out.extend(rows(&name, &recs, rec.has_item_titles(), a.output.as_deref()));
    } else if let Some(user) = &a.user {
        let u = rec.recommended_user(user)?;
        let recs = rec.recommend_rows(&[u], a.n, a.include_seen, a.popularity).pop().unwrap_or_default();
        out.extend(rows(user, &recs, rec.has_item_titles(), a.output.as_deref()));
    } else {
        bail!("say whom to recommend for: --user ID, --all, or --ratings new_user.csv");
    }
    super::output::emit(header(&rec), &out, a.output.as_deref())
}

/// `--all`: every user's list, written to --output as it is ranked (the lists are never all held),
/// else printed as one table.
fn recommend_all(rec: &Recommender, a: &RecommendArgs) -> Result<()> {
    let start = Instant::now();
    let users: Vec<u32> = (1..rec.users().len() as u32).collect();
    let (name, titled) = (|u: u32| rec.users().name(u as usize), rec.has_item_titles());
    match a.output.as_deref() {
        Some(path) => super::output::write_csv(path, header(rec), |push| {
            rec.recommend_each(&users, a.n, a.include_seen, a.popularity, |u, recs: Vec<Scored>| {
                rows(name(u), &recs, titled, Some(path)).try_for_each(|row| push(&row))
            })
        })?,
        None => {
            let lists = rec.recommend_rows(&users, a.n, a.include_seen, a.popularity);
            let out: Vec<Vec<String>> =
                users.iter().zip(&lists).flat_map(|(&u, recs)| rows(name(u), recs, titled, None)).collect();
            super::output::emit(header(rec), &out, None)?;
        }
    }
    eprintln!("top {} for {} users in {:.2}s", a.n, users.len(), start.elapsed().as_secs_f64());
    Ok(())
}
