//! `fastcollab info`: what an exported model is, where it came from, how it did.
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use fastcollab::load_learner;

#[derive(Args)]
pub struct InfoArgs {
    /// The exported model (`train --export FILE`).
    #[arg(long)]
    model: PathBuf,
}

pub fn run(a: InfoArgs) -> Result<()> {
    let rec = load_learner(&a.model)?;
    let m = &rec.meta;
    let bytes = std::fs::metadata(&a.model)?.len();
    println!(
        "{} ({:.1} MiB), format {} version {}",
        a.model.display(),
        bytes as f64 / (1 << 20) as f64,
        m.format,
        m.format_version
    );
    println!("model: {}", serde_json::to_string(&m.model)?);
    println!("{}", rec.model);
    let params: i64 = rec.vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
    println!("parameters: {params}");
    println!(
        "vocabularies: {} users, {} items ({} and {} rows with #na#); columns {:?}",
        m.vocab.user.len() - 1,
        m.vocab.item.len() - 1,
        m.vocab.user.len(),
        m.vocab.item.len(),
        m.names
    );
    if let Some(titles) = &m.item_titles {
        let titled = titles.iter().filter(|t| !t.is_empty()).count();
        println!("item titles: {titled} of {} items", titles.len() - 1);
    }
    println!("training ratings kept for recommendations: {}", rec.seen().items.len());
    println!("provenance: {}", serde_json::to_string_pretty(&m.provenance)?);
    println!("training: {}", serde_json::to_string_pretty(&m.training)?);
    println!("metrics: {}", serde_json::to_string_pretty(&m.metrics)?);
    Ok(())
}
