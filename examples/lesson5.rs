//! Lesson 5 of fastai's course-v3, collaborative filtering on MovieLens 100k, step by step.
//!
//! `scripts/lesson5 [--data DIR] [--out DIR] [--seed N] [--split seeded|fastai-v1]`
//! prints the lesson's tables and writes `metrics.json` and four PNG charts into `--out`.
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use fastcollab::interpret::{most_rated, ranked};
use fastcollab::plot::{plot_labelled_scatter, plot_losses, plot_lr, plot_lr_find};
use fastcollab::{
    collab_learner, pca, untar_data, CollabConfig, CollabDataBunch, CollabLearnerConfig, DatasetSpec, DotBiasConfig,
    LrFindConfig, ModelConfig, MovieLens100k, SplitMethod, TrainMode,
};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// The ml-100k folder (default: downloaded and cached by `untar_data`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where metrics.json, the charts and models/ go.
    #[arg(long, default_value = "target/lesson5")]
    out: PathBuf,
    /// Seed of the split, the shuffles and the initialisation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// `fastai-v1` (default: numpy's permutation, the lesson's exact validation rows) or `seeded`.
    #[arg(long, default_value = "fastai-v1")]
    split: SplitMethod,
    /// `auto`, `exact`, `autograd` or `lazy`.
    #[arg(long, default_value = "auto")]
    mode: TrainMode,
}

fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)?;
    let path = match args.data {
        Some(p) => p,
        None => untar_data(&DatasetSpec::ml_100k())?,
    };

    let ml = MovieLens100k::load(&path)?;
    println!("ratings.head()\n{}", ml.ratings.head(5));
    println!("movies.head()\n{}", ml.movies.select(&["movieId", "title", "date", "url"])?.head(5));
    println!("len(ratings) = {}\n", ml.ratings.len());
    let rating_movie = ml.rating_movie()?;
    println!("rating_movie.head()\n{}", rating_movie.head(5));

    let cfg = CollabConfig {
        item_name: Some("title".into()),
        valid_pct: 0.1,
        seed: args.seed,
        split: args.split,
        ..Default::default()
    };
    let data = CollabDataBunch::from_df(&rating_movie, &cfg)?;
    println!("data.show_batch()\n{}", data.show_batch(8));

    let model = ModelConfig::DotBias(DotBiasConfig { n_factors: 40, y_range: Some((0.0, 5.5)) });
    let learner_cfg =
        CollabLearnerConfig { model, wd: 0.1, mode: args.mode, path: args.out.clone(), ..Default::default() };
    let mut learn = collab_learner(data, &learner_cfg)?;

    let lr = learn.lr_find(&LrFindConfig::default())?;
    let fmt = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.2E}"));
    println!("LR Finder is complete ({} batches).", lr.lrs.len());
    println!("Min numerical gradient: {}", fmt(lr.min_grad_lr));
    println!("Min loss divided by 10: {}", fmt(lr.min_loss_lr));
    println!("Valley (fastai v2): {}", fmt(lr.valley_lr));
    plot_lr_find(&lr, &args.out.join("lr_find.png"), 10, 15)?;

    println!(
        "\nlearn.fit_one_cycle(5, 5e-3)   [{:?} mode, {} thread(s)]",
        learn.mode(),
        fastcollab::threads::current()
    );
    learn.fit_one_cycle(5, 5e-3)?;
    println!("Total time: {:.2}s\n", learn.recorder.fit_seconds);
    plot_losses(&learn.recorder, &args.out.join("losses.png"))?;
    plot_lr(&learn.recorder, &args.out.join("lr_mom.png"))?;

    let saved = learn.save("dotprod")?;
    learn.load("dotprod")?;
    println!("saved and reloaded {}\n\nlearn.model\n{}\n", saved.display(), learn.model);

    let top: Vec<(String, usize, f64)> = most_rated(&rating_movie, "title", "rating")?.into_iter().take(1000).collect();
    let titles: Vec<&str> = top.iter().map(|t| t.0.as_str()).collect();
    println!("top_movies[:10] = {:?}\n", &titles[..10]);
    let mean_of = |t: &str| top.iter().find(|m| m.0 == t).map_or(f64::NAN, |m| m.2);
    let biases = ranked(&learn.bias(&titles, true)?, &titles);
    println!("Lowest item biases (bias, title, mean rating):");
    for (b, t) in biases.iter().take(15) {
        println!("  {b:>8.4}  {t}  {:.3}", mean_of(t));
    }
    println!("Highest item biases:");
    for (b, t) in biases.iter().rev().take(15) {
        println!("  {b:>8.4}  {t}  {:.3}", mean_of(t));
    }

    let movie_w = learn.weight(&titles, true)?;
    let movie_pca = pca(&movie_w, 3)?;
    let ratio: Vec<String> = movie_pca.explained_ratio.iter().map(|r| format!("{:.1}%", 100.0 * r)).collect();
    println!(
        "\nmovie_w {:?} -> pca(3) {:?}, explained variance {}",
        movie_w.size(),
        movie_pca.projected.size(),
        ratio.join(", ")
    );
    let facs: Vec<Vec<f64>> = (0..3)
        .map(|k| Vec::<f64>::try_from(movie_pca.projected.select(1, k).to_kind(tch::Kind::Double)).unwrap_or_default())
        .collect();
    for (k, fac) in facs.iter().take(2).enumerate() {
        let order = ranked(&tch::Tensor::from_slice(fac), &titles);
        let show =
            |v: Vec<&(f64, String)>| v.iter().map(|(f, t)| format!("{t} ({f:.4})")).collect::<Vec<_>>().join("; ");
        println!("fac{k} highest: {}", show(order.iter().rev().take(10).collect()));
        println!("fac{k} lowest:  {}", show(order.iter().take(10).collect()));
    }
    let points: Vec<(f64, f64, String)> = (0..50).map(|i| (facs[0][i], facs[2][i], titles[i].to_string())).collect();
    plot_labelled_scatter(
        &points,
        &args.out.join("movie_pca.png"),
        "50 most-rated movies on PCA factors 0 and 2",
        "fac0",
        "fac2",
    )?;

    let mut metrics = learn.metrics();
    metrics.insert("split".into(), json!(args.split.to_string()));
    let suggestions = json!({ "v1": lr.min_grad_lr, "min_loss_div10": lr.min_loss_lr, "valley": lr.valley_lr });
    metrics.insert("lr_suggestions".into(), suggestions);
    std::fs::write(args.out.join("metrics.json"), serde_json::to_string_pretty(&metrics)?)?;
    println!("\nwrote {}", args.out.join("metrics.json").display());
    Ok(())
}
