//! Command-line interface: clap `Cli` and dispatch only; one file per subcommand.
mod bench;
mod compare;
mod cv;
mod export;
mod info;
mod interpret;
mod output;
mod predict;
mod recommend;
mod similar;
mod train;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use fastcollab::{untar_data, CollabConfig, DatasetSpec, SplitMethod};

/// fastai's collaborative filtering (lesson 5) in Rust on libtorch.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on MovieLens 100k (or a ratings CSV) and save it with its metrics.
    Train(Box<train::TrainArgs>),
    /// Train on ml-100k's canonical u1–u5 (and ua/ub) base files and evaluate on their test files.
    Cv(cv::CvArgs),
    /// Time the exact, dense, autograd and lazy training paths (and fastai, when installed) in one run.
    Bench(bench::BenchArgs),
    /// Write the train and validation rows of a split as CSV, for fastai or other tools.
    ExportSplit(export::ExportArgs),
    /// Print a fastcollab run and a fastai run (scripts/fastai_reference.py) side by side.
    Compare(compare::CompareArgs),
    /// Describe an exported model: kind, sizes, vocabularies, provenance, training, metrics.
    Info(info::InfoArgs),
    /// Predict ratings for the (user, item) pairs of a CSV file.
    Predict(predict::PredictArgs),
    /// Recommend items for a user, every user, or a new user from their ratings (fold-in).
    Recommend(recommend::RecommendArgs),
    /// Items most similar to an item (cosine similarity of the item factors).
    Similar(similar::SimilarArgs),
    /// Read what an exported model learned, as the lesson does: item biases and PCA of the factors.
    Interpret(interpret::InterpretArgs),
}

/// Parses the command line and runs the subcommand.
pub fn run() -> Result<()> {
    match Cli::parse().command {
        Command::Train(a) => train::run(*a),
        Command::Cv(a) => cv::run(a),
        Command::Bench(a) => bench::run(a),
        Command::ExportSplit(a) => export::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Info(a) => info::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Recommend(a) => recommend::run(a),
        Command::Similar(a) => similar::run(a),
        Command::Interpret(a) => interpret::run(a),
    }
}

/// The ml-100k folder: `--data` if given, else the `untar_data` cache (downloading if needed).
fn ml100k(data: Option<PathBuf>) -> Result<PathBuf> {
    Ok(match data {
        Some(p) => p,
        None => untar_data(&DatasetSpec::ml_100k())?,
    })
}

/// Creates `dir` if needed and checks that files can be written in it.
fn check_writable_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the folder {}", dir.display()))?;
    tempfile::tempfile_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
    Ok(())
}

/// Checks that the file `path` can be written (its folder created if needed), before any long work.
fn check_writable_file(path: &std::path::Path) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    check_writable_dir(dir)
}

/// The columns of a `--ratings` file, when they are not MovieLens' names (nor the first three).
#[derive(Args)]
struct ColumnArgs {
    /// The --ratings column holding the users.
    #[arg(long, requires = "ratings")]
    user_col: Option<String>,
    /// The --ratings column holding the items.
    #[arg(long, requires = "ratings")]
    item_col: Option<String>,
    /// The --ratings column holding the ratings.
    #[arg(long, requires = "ratings")]
    rating_col: Option<String>,
}

impl ColumnArgs {
    /// Names these columns in `cfg`.
    fn name_in(&self, cfg: &mut CollabConfig) {
        (cfg.user_name, cfg.item_name, cfg.rating_name) =
            (self.user_col.clone(), self.item_col.clone(), self.rating_col.clone());
    }
}

/// The ml-100k folder and the validation split, shared by the subcommands that split.
#[derive(Args)]
struct SplitArgs {
    /// The ml-100k folder (default: the untar_data cache).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Share of ratings held out for validation.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    valid_pct: f64,
    /// Seed of the split (and of the shuffles and the initialisation when training).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// `fastai-v1` (numpy's permutation, the lesson's rows) or `seeded`.
    #[arg(long, value_enum, default_value = "fastai-v1")]
    split: SplitMethod,
}

impl SplitArgs {
    /// The data-bunch configuration for these split settings and columns; ratings further outside
    /// `y_range` than its width are refused while reading (with file and line).
    fn config(&self, item: &str, bs: usize, y_range: (f64, f64)) -> CollabConfig {
        CollabConfig {
            user_name: Some("userId".into()),
            item_name: Some(item.into()),
            rating_name: Some("rating".into()),
            valid_pct: self.valid_pct,
            seed: self.seed,
            bs,
            split: self.split,
            rating_range: Some(accepted_around(y_range)),
        }
    }
}

/// The ratings accepted with the output range `y_range`: those within its width of it (0–5.5: −5.5
/// to 11); a rating further out is taken for a typo and refused with its line.
fn accepted_around((lo, hi): (f64, f64)) -> (f64, f64) {
    (lo - (hi - lo), hi + (hi - lo))
}

/// The ratings in column `name` of `table` (read from `path`), or which line holds no number.
pub(crate) fn ratings(table: &fastcollab::Table, name: &str, path: &std::path::Path) -> Result<Vec<f32>> {
    let col = table.column(name)?;
    if let Some(values) = col.to_f64().filter(|v| v.iter().all(|x| x.is_finite())) {
        return Ok(values.into_iter().map(|x| x as f32).collect());
    }
    let r = (0..table.len())
        .find(|&r| !col.value(r).to_string().trim().parse::<f64>().is_ok_and(f64::is_finite))
        .unwrap_or(0);
    // The file's line of record `r` (a quoted field may span lines), read again for the message.
    let delimiter = fastcollab::ReadOptions::sniffed(path)?.delimiter;
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).from_path(path)?;
    let line = reader.byte_records().nth(r).and_then(|rec| Some(rec.ok()?.position()?.line())).unwrap_or(0);
    bail!("{}:{line}: field {name:?}: {:?} is not a finite number", path.display(), col.value(r).to_string())
}

/// The names an input file's item column may have for `rec`: the training data's, `item`, and, for a
/// model with item titles, `title`.
pub(crate) fn item_columns(rec: &fastcollab::Recommender) -> Vec<&str> {
    let mut names = vec![rec.meta.names[1].as_str(), "item"];
    names.extend(rec.has_item_titles().then_some("title"));
    names
}

/// The first of `names` (repeats dropped) that `table` (read from `path`) has as a column; else an
/// error naming the file, the column's use (`what`), the names looked for and those it has.
pub(crate) fn column_of<'a>(
    table: &fastcollab::Table,
    path: &std::path::Path,
    what: &str,
    names: &[&'a str],
) -> Result<&'a str> {
    if let Some(found) = names.iter().find(|n| table.column(n).is_ok()) {
        return Ok(found);
    }
    let mut looked: Vec<String> = Vec::new();
    for n in names.iter().map(|n| format!("{n:?}")) {
        if !looked.contains(&n) {
            looked.push(n);
        }
    }
    bail!("{}: needs {what} column ({}); it has {:?}", path.display(), looked.join(" or "), table.names())
}

/// The `--y-range LO,HI` flag's values, checked.
fn y_range_arg(values: Option<&[f64]>) -> Result<Option<(f64, f64)>> {
    match values {
        Some(&[lo, hi]) if lo < hi && lo.is_finite() && hi.is_finite() => Ok(Some((lo, hi))),
        Some(bad) => bail!("--y-range needs LO,HI, finite with LO < HI, got {bad:?}"),
        None => Ok(None),
    }
}
