//! Lesson 5 of fastai's course-v3, collaborative filtering on MovieLens 100k, step by step.
//!
//! `scripts/lesson5 [--data DIR] [--out DIR] [--seed N] [--split seeded|fastai-v1] [--mode MODE]`
//! prints the lesson's tables and writes `metrics.json` and four PNG charts into `--out`.
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use fastcollab::interpret::{most_rated, ranked, Extremes};
use fastcollab::plot::{plot_labelled_scatter, plot_losses, plot_lr, plot_lr_find};
use fastcollab::{
    collab_learner, pca, threads, untar_data, CollabConfig, CollabDataBunch, CollabLearnerConfig, DatasetSpec,
    DotBiasConfig, LrFindConfig, Metrics, ModelConfig, MovieLens100k, SplitMethod, TrainMode,
};
use tch::Tensor;

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
    /// `auto` (the exact path on the CPU), `exact`, `dense`, `autograd` or `lazy`.
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
    println!("{lr}");
    plot_lr_find(&lr, &args.out.join("lr_find.png"), 10, 15)?;

    println!("\nlearn.fit_one_cycle(5, 5e-3)   [{:?} mode, {} thread(s)]", learn.mode(), threads::current());
    learn.fit_one_cycle(5, 5e-3)?;
    println!("Total time: {:.2}s\n", learn.recorder.fit_seconds);
    plot_losses(&learn.recorder, &args.out.join("losses.png"))?;
    plot_lr(&learn.recorder, &args.out.join("lr_mom.png"))?;

    let saved = learn.save("dotprod")?;
    learn.load("dotprod")?;
    println!("saved and reloaded {}\n\nlearn.model\n{}\n", saved.display(), learn.model);

    let top: Vec<_> = most_rated(&rating_movie, "title", "rating")?.into_iter().take(1000).collect();
    let titles: Vec<&str> = top.iter().map(|t| t.0.as_str()).collect();
    println!("top_movies[:10] = {:?}\n", &titles[..10]);
    let biases = ranked(&learn.bias(&titles, true)?, &titles);
    println!("{}", Extremes { what: "item bias", name: "title", ranked: &biases, stats: &top, n: 15 });

    let movie_pca = pca(&learn.weight(&titles, true)?, 3)?;
    let ratio: Vec<String> = movie_pca.explained_ratio.iter().map(|r| format!("{:.1}%", 100.0 * r)).collect();
    println!("movie_pca: explained variance {}\n", ratio.join(", "));
    let facs = [movie_pca.factor(0)?, movie_pca.factor(1)?, movie_pca.factor(2)?];
    for (what, fac) in [("fac0", &facs[0]), ("fac1", &facs[1])] {
        let ranked = ranked(&Tensor::from_slice(fac), &titles);
        println!("{}", Extremes { what, name: "title", ranked: &ranked, stats: &top, n: 10 });
    }
    let points: Vec<_> = (0..50).map(|i| (facs[0][i], facs[2][i], titles[i].to_string())).collect();
    let title = "50 most-rated movies on PCA factors 0 and 2";
    plot_labelled_scatter(&points, &args.out.join("movie_pca.png"), title, "fac0", "fac2")?;

    let metrics = Metrics { lr_suggestions: Some(lr.suggestions()), ..learn.metrics() };
    std::fs::write(args.out.join("metrics.json"), serde_json::to_string_pretty(&metrics)?)?;
    println!("wrote {}", args.out.join("metrics.json").display());
    Ok(())
}
