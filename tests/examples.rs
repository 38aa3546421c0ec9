//! Smoke test of `examples/lesson5.rs` on ml-100k (it runs and writes its charts and metrics.json),
//! and the README's lesson code kept the same as the compiled doc example.
mod common;

use std::process::Command;

#[test]
fn lesson5_example_writes_metrics_and_charts() {
    let Some(data) = common::ml100k() else { return };
    let out = common::temp_dir("lesson5-example");
    let status = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--release", "--example", "lesson5", "--", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success());
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    for key in ["train_loss", "valid_loss", "epoch_seconds"] {
        assert_eq!(m[key].as_array().unwrap().len(), 5, "{key}");
    }
    assert_eq!((m["n_users"].as_u64(), m["n_items"].as_u64(), m["seed"].as_u64()), (Some(944), Some(1654), Some(42)));
    assert!(m["fit_seconds"].as_f64().unwrap() > 0.0);
    assert!(m["lr_suggestions"]["v1"].is_number() && m["lr_suggestions"]["valley"].is_number());
    for png in ["lr_find.png", "losses.png", "lr_mom.png", "movie_pca.png"] {
        assert!(std::fs::metadata(out.join(png)).unwrap().len() > 10_000, "{png}");
    }
    assert!(out.join("models/dotprod.pth").is_file());
}

/// The README's lesson in Rust is the crate's doc example, which `cargo test` compiles: the
/// README cannot drift from the API unnoticed.
#[test]
fn readme_lesson_code_is_the_compiled_doc_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme.find("```rust\n").expect("the README shows the lesson in Rust") + "```rust\n".len();
    let shown: Vec<&str> = readme[start..][..readme[start..].find("```").unwrap()].lines().collect();
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let compiled: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .filter(|l| !l.starts_with("# "))
        .collect();
    let at = compiled.iter().position(|l| l.starts_with("```no_run")).expect("src/lib.rs has the doc example") + 1;
    let end = at + compiled[at..].iter().position(|l| l.starts_with("```")).unwrap();
    assert_eq!(shown, compiled[at..end], "README.md's lesson differs from src/lib.rs's doc example");
}
