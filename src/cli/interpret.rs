//! `fastcollab interpret`: the lesson's reading of a model, for any exported model: the most rated
//! items, the lowest and highest item biases, and the items' factors through PCA, with a plot.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use fastcollab::interpret::{ranked, Extremes};
use fastcollab::plot::plot_labelled_scatter;
use fastcollab::{load_learner, pca, CollabModel};
use tch::Tensor;

#[derive(Args)]
pub struct InterpretArgs {
    /// The exported model (`train --export FILE`).
    #[arg(long)]
    model: PathBuf,
    /// How many of the most rated items (in training) to read, as the lesson's `top_movies`.
    #[arg(long, default_value_t = 1000)]
    top: usize,
    /// Items shown at each end of a table (default: the lesson's 15 for biases, 10 for factors).
    #[arg(short = 'n', long = "n")]
    n: Option<usize>,
    /// Plot the 50 most rated items on PCA factors 0 and 2, labelled, into this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
}

pub fn run(a: InterpretArgs) -> Result<()> {
    let rec = load_learner(&a.model)?;
    let top: Vec<_> = rec.most_rated().into_iter().take(a.top).collect();
    let names: Vec<&str> = top.iter().map(|t| t.0.as_str()).collect();
    if names.is_empty() {
        bail!("{}: no item has a training rating to read", a.model.display());
    }
    // Items are read by id and shown by title, for a model with item titles.
    let label = |name: &str| rec.item_row(name).ok().and_then(|r| rec.item_title(r)).unwrap_or(name).to_string();
    let labels: Vec<String> = names.iter().map(|n| label(n)).collect();
    let top: Vec<_> = top.iter().zip(&labels).map(|((_, count, mean), l)| (l.clone(), *count, *mean)).collect();
    let column = if rec.has_item_titles() { "title" } else { &rec.meta.names[1] };
    let shown: Vec<&String> = labels.iter().take(10).collect();
    println!("the {} most rated items in training (by {column}), first 10: {shown:?}\n", names.len());
    if let CollabModel::DotBias(_) = rec.model {
        let biases = ranked(&rec.item_bias(&names)?, &labels);
        println!(
            "{}",
            Extremes { what: "item bias", name: column, ranked: &biases, stats: &top, n: a.n.unwrap_or(15) }
        );
    } else {
        println!("(EmbeddingNN has no biases: only its item embeddings are read below)\n");
    }
    let weights = rec.item_weight(&names)?;
    let k = 3.min(weights.size()[1] as usize).min(names.len());
    let items_pca = pca(&weights, k).context("PCA of the item factors")?;
    let ratio: Vec<String> = items_pca.explained_ratio.iter().map(|r| format!("{:.1}%", 100.0 * r)).collect();
    println!("item PCA: explained variance {}\n", ratio.join(", "));
    let facs: Vec<Vec<f64>> = (0..k).map(|f| items_pca.factor(f)).collect::<fastcollab::Result<_>>()?;
    for (f, fac) in facs.iter().enumerate().take(2) {
        let ranked = ranked(&Tensor::from_slice(fac), &labels);
        let what = format!("fac{f}");
        println!("{}", Extremes { what: &what, name: column, ranked: &ranked, stats: &top, n: a.n.unwrap_or(10) });
    }
    if let Some(path) = &a.plot {
        let (x, y) = (0, if k > 2 { 2 } else { k - 1 });
        let points: Vec<_> = (0..50.min(names.len())).map(|i| (facs[x][i], facs[y][i], labels[i].clone())).collect();
        let title = format!("{} most rated items on PCA factors {x} and {y}", points.len());
        plot_labelled_scatter(&points, path, &title, &format!("fac{x}"), &format!("fac{y}"))?;
        println!("plotted {}", path.display());
    }
    Ok(())
}
