//! The `fastcollab` binary on small fixtures and, when present, on ml-100k.
mod common;

use std::path::Path;
use std::process::{Command, Output};

fn fastcollab(args: &[&str], cwd: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_fastcollab")).args(args).current_dir(cwd).output().unwrap();
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

fn ratings_csv(dir: &Path, rows: usize) -> std::path::PathBuf {
    let (data, _) = common::low_rank(21);
    let mut csv = String::from("userId,movieId,rating,timestamp\n");
    for k in 0..rows.min(data.train.len()) {
        csv += &format!(
            "{},{},{:.1},{}\n",
            data.train.users[k],
            data.train.items[k],
            data.train.ratings[k].clamp(0.5, 5.0),
            1000 + k
        );
    }
    let path = dir.join("ratings.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

/// `train` on the ratings file `csv` for two epochs into `run/`, with `extra` flags (e.g.
/// `--export m.safetensors`), run in `dir`.
fn train_small(dir: &Path, csv: &str, extra: &[&str]) -> Output {
    fastcollab(&[&["train", "--ratings", csv, "--epochs", "2", "--out", "run"][..], extra].concat(), dir)
}

#[test]
fn train_on_a_ratings_csv_writes_model_and_metrics() {
    let dir = common::temp_dir("cli-train");
    let csv = ratings_csv(&dir, 3000);
    let out = fastcollab(
        &["train", "--ratings", csv.to_str().unwrap(), "--epochs", "2", "--out", "run", "--name", "m"],
        &dir,
    );
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("epoch     train_loss  valid_loss  time"), "{stdout}");
    assert!(dir.join("run/models/m.pth").is_file());
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["valid_loss"].as_array().unwrap().len(), 2);
    assert!(metrics["n_users"].as_u64().unwrap() > 50);
    assert!(metrics.get("ranking").is_none(), "ranking only when asked");

    // --ranking: top-k metrics of the model, the blend and the baselines on the validation rows.
    for (extra, from) in [(&[][..], None), (&["--relevant-from", "4"][..], Some(4.0))] {
        let args = [
            &["train", "--ratings", csv.to_str().unwrap(), "--epochs", "2", "--out", "run"][..],
            &["--ranking", "--k", "5"],
            extra,
        ]
        .concat();
        let out = fastcollab(&args, &dir);
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ranking@5 on the validation rows")
        );
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("run/metrics.json")).unwrap()).unwrap();
        let ranking = &metrics["ranking"];
        assert_eq!(ranking["k"], 5);
        let relevant_from = ranking["relevant_from"].as_f64().unwrap();
        // Default: three quarters of the way up the training ratings' range (within 0.5-5 here).
        assert!(from.map_or((3.0..=5.0).contains(&relevant_from), |f| relevant_from == f), "{relevant_from}");
        for name in ["model", "blend", "mostpop", "random"] {
            for key in ["precision", "recall", "ndcg", "map", "hit_rate", "coverage"] {
                let x = ranking[name][key].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&x), "{name}.{key} = {x}");
            }
        }
        assert!(ranking["n_users"].as_u64().unwrap() > 10);
    }
}

#[test]
fn train_takes_fastais_sqr_mom_and_records_it() {
    let dir = common::temp_dir("cli-sqr-mom");
    let csv = ratings_csv(&dir, 3000);
    let csv = csv.to_str().unwrap();
    let out = fastcollab(&["train", "--ratings", csv, "--epochs", "1", "--sqr-mom", "0.999", "--out", "run"], &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["sqr_mom"].as_f64(), Some(0.999));
    fails_clearly(&fastcollab(&["train", "--ratings", csv, "--sqr-mom", "1", "--out", "run"], &dir), "sqr_mom");
}

/// `metrics.json`'s `recipe` is what trained: the named recipe with the flags that override it.
#[test]
fn train_records_the_recipe_it_trained() {
    let dir = common::temp_dir("cli-recipe");
    let csv = ratings_csv(&dir, 3000);
    let csv = csv.to_str().unwrap();
    let recipe = |args: &[&str], out: &str| -> serde_json::Value {
        let base = ["train", "--ratings", csv, "--epochs", "1", "--out", out];
        let run = fastcollab(&[&base[..], args].concat(), &dir);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(out).join("metrics.json")).unwrap()).unwrap();
        metrics["recipe"].clone()
    };
    let dot = recipe(&["--recipe", "bs256", "--n-factors", "12", "--wd", "0.05", "--sqr-mom", "0.999"], "dot");
    assert_eq!((dot["name"].as_str(), dot["bs"].as_u64(), dot["epochs"].as_u64()), (Some("bs256"), Some(256), Some(1)));
    assert_eq!((dot["n_factors"].as_u64(), dot["wd"].as_f64()), (Some(12), Some(0.05)));
    assert_eq!((dot["sqr_mom"].as_f64(), dot["eps"].as_f64()), (Some(0.999), Some(1e-8)));
    assert_eq!(dot["y_range"], serde_json::json!([0.0, 5.5]));
    let nn = recipe(&["--use-nn", "--layers", "20,10", "--export", "nn.safetensors"], "nn");
    assert_eq!(nn["layers"], serde_json::json!([20, 10]));
    assert!(nn.get("n_factors").is_none(), "EmbeddingNN has no factor count: {nn}");
    // `interpret` reads an EmbeddingNN's item embeddings (it has no biases).
    let out = fastcollab(&["interpret", "--model", "nn.safetensors", "-n", "2"], &dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("EmbeddingNN has no biases") && text.contains("fac1, highest 2"),
        "{text}"
    );

    // Flags that would be ignored by the model asked for are refused, not dropped.
    let refused = |args: &[&str], expected: &str| {
        let out = fastcollab(&[&["train", "--ratings", csv, "--out", "refused"][..], args].concat(), &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!dir.join("refused/metrics.json").exists());
    };
    refused(&["--use-nn", "--n-factors", "12"], "cannot be used with");
    refused(&["--layers", "20,10"], "--use-nn");
    refused(&["--data", "ml-100k"], "cannot be used with");
    refused(&["--item", "movieId"], "cannot be used with");
    refused(&["--valid-ratings", csv, "--split", "seeded"], "cannot be used with");
    refused(&["--use-nn", "--recipe", "tuned"], "--recipe tuned chooses among EmbeddingDotBias models");
}

/// `--lr-find` reports the finder's suggestions and plot, and leaves the fit as it would have been.
#[test]
fn train_lr_find_records_suggestions_and_changes_nothing_else() {
    let dir = common::temp_dir("cli-lr-find");
    let csv = ratings_csv(&dir, 3000);
    let csv = csv.to_str().unwrap();
    let metrics = |out: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(out).join("metrics.json")).unwrap()).unwrap()
    };
    let out = fastcollab(&["train", "--ratings", csv, "--epochs", "2", "--out", "with", "--lr-find"], &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("LR Finder is complete"));
    assert!(std::fs::metadata(dir.join("with/lr_find.png")).unwrap().len() > 10_000);
    assert!(fastcollab(&["train", "--ratings", csv, "--epochs", "2", "--out", "without"], &dir).status.success());
    let (with, without) = (metrics("with"), metrics("without"));
    assert!(with["lr_suggestions"]["valley"].is_number() && without.get("lr_suggestions").is_none());
    assert_eq!(with["valid_loss"], without["valid_loss"], "the finder changed the fit");
    assert_eq!(with["recipe"]["name"], "lesson");
}

#[test]
fn bad_input_fails_with_file_line_and_field() {
    let dir = common::temp_dir("cli-bad");
    std::fs::write(dir.join("ratings.csv"), "userId,movieId,rating,timestamp\n1,2,3.5,10\n1,x,4,11\n").unwrap();
    let out = fastcollab(&["train", "--ratings", "ratings.csv"], &dir);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ratings.csv:3: field \"movieId\": \"x\" is not a whole number"), "{stderr}");
    let out = fastcollab(&["train", "--ratings", "missing.csv"], &dir);
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.csv"));
}

#[test]
fn export_split_and_cv_on_ml100k() {
    let Some(data) = common::ml100k() else { return };
    let dir = common::temp_dir("cli-ml100k");
    let d = data.to_str().unwrap();
    assert!(fastcollab(&["export-split", "--data", d, "--out", "split"], &dir).status.success());
    let valid = std::fs::read_to_string(dir.join("split/valid.csv")).unwrap();
    let mut lines = valid.lines();
    assert_eq!(lines.next(), Some("userId,movieId,rating,timestamp,title"));
    assert!(lines.next().unwrap().starts_with("498,"), "first validation row is the lesson's (user 498, Casino)");
    assert_eq!(valid.lines().count(), 10_001);

    let out = fastcollab(&["cv", "--data", d, "--recipe", "lesson", "--json", "cv.json"], &dir);
    assert!(out.status.success());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cv.json")).unwrap()).unwrap();
    let folds = report["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 5);
    for f in folds {
        for key in ["name", "mse", "rmse", "mae", "n_test", "n_unseen"] {
            assert!(!f[key].is_null(), "{key} missing");
        }
        assert_eq!(f["n_test"], 20_000);
    }
    let mean = report["mean_rmse"].as_f64().unwrap();
    assert!(mean <= 0.915, "lesson recipe mean RMSE {mean}");
    assert!(report["sd_rmse"].as_f64().unwrap() > 0.0 && report["seconds"].as_f64().unwrap() > 0.0);

    // Items by movieId show u.item's titles; the lesson's items are the titles themselves.
    let train = ["train", "--data", d, "--epochs", "1", "--out", "run", "--export", "ids.safetensors"];
    assert!(fastcollab(&[&train[..], &["--item", "movieId"]].concat(), &dir).status.success());
    let out = fastcollab(&["similar", "--model", "ids.safetensors", "--item", "Star Wars (1977)", "-n", "1"], &dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("item              rank  similar  score   title\nStar Wars (1977)  1  "), "{text}");
    fails_clearly(&fastcollab(&[&train[..], &["--items", "u.item"]].concat(), &dir), "u.item's titles already");
}

#[test]
fn compare_prints_both_runs_side_by_side() {
    let dir = common::temp_dir("cli-compare");
    std::fs::write(dir.join("ours.json"), r#"{"train_loss":[0.9,0.6],"valid_loss":[0.95,0.81],"fit_seconds":0.5}"#)
        .unwrap();
    std::fs::write(
        dir.join("fastai.json"),
        r#"{"fastai_version":"2.8.12","train_loss":[0.91,0.61],"valid_loss":[0.96,0.82],"fit_seconds":40.0}"#,
    )
    .unwrap();
    let out = fastcollab(&["compare", "--ours", "ours.json", "--fastai", "fastai.json"], &dir);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0.810000") && text.contains("0.820000"), "{text}");
    assert!(text.contains("difference -0.010000") && text.contains("80.0x faster"), "{text}");
    let out = fastcollab(&["compare", "--ours", "missing.json", "--fastai", "fastai.json"], &dir);
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading missing.json"));
}

#[test]
fn bench_writes_its_json_contract() {
    let dir = common::temp_dir("cli-bench");
    let out = fastcollab(&["bench", "--scale", "20000", "--epochs", "1", "--json", "scale.json"], &dir);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("scale.json")).unwrap()).unwrap();
    for key in ["load_seconds", "peak_mib", "noise_floor"] {
        assert!(v[key].is_number(), "{key}");
    }
    for key in ["fit_seconds", "seconds_per_epoch", "valid_mse"] {
        assert!(v["exact"][key].is_number(), "exact.{key}");
    }
    assert!(v["dense"]["seconds_per_epoch_estimated"].is_number() && v["dense"]["from_steps"].is_number());
    // One dense window after each epoch of the trained fit.
    assert_eq!(v["dense"]["windows"].as_array().map(Vec::len), Some(1));
    assert_eq!((v["n_ratings"].as_u64(), v["mode"].as_str()), (Some(20000), Some("exact")));
    assert_eq!(v["settings"]["moms"].as_array().map(Vec::len), Some(2));
    assert!(v["settings"]["lr"].is_number() && v["recommend"]["all_users_top10_seconds"].is_number());
    // CPU time during the fit: the process's own (it trained, so some), and what others took.
    assert!(v["cpu"]["process_seconds"].as_f64().is_some_and(|s| s > 0.0), "{}", v["cpu"]);
    for key in ["kernel_seconds", "training_thread_seconds", "helper_seconds", "others_seconds", "steal_seconds"] {
        assert!(v["cpu"][key].as_f64().is_some_and(|s| s >= 0.0), "cpu.{key}");
    }
    assert!(v["cpu"]["page_faults"].as_u64().is_some(), "{}", v["cpu"]);
    let out =
        fastcollab(&["bench", "--scale", "20000", "--epochs", "1", "--mode", "lazy", "--json", "lazy.json"], &dir);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("lazy.json")).unwrap()).unwrap();
    assert!(v["lazy"]["seconds_per_epoch"].is_number() && v["exact"].is_null());
    // An unwritable --json is refused before anything is measured.
    std::fs::write(dir.join("a-file"), "").unwrap();
    let out = fastcollab(&["bench", "--scale", "20000", "--json", "a-file/scale.json"], &dir);
    fails_clearly(&out, "--json a-file/scale.json");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("synthetic"), "it measured first");
    // A flag that only means something with another (--scale, --ranking, --cold-start) is a usage
    // error without it, not silently ignored.
    let usage: [&[&str]; 4] = [
        &["bench", "--epochs", "1"],
        &["bench", "--scale", "100", "--nn"],
        &["cv", "--k", "5"],
        &["cv", "--plot", "c.png"],
    ];
    for args in usage {
        let out = fastcollab(args, &dir);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    let Some(data) = common::ml100k() else { return };
    let d = data.to_str().unwrap();
    let out = fastcollab(&["bench", "--data", d, "--fastai-python", "none", "--json", "bench.json"], &dir);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("bench.json")).unwrap()).unwrap();
    for variant in ["exact", "dense", "autograd", "lazy"] {
        assert!(v["variants"][variant]["fit_seconds"].as_f64().unwrap() > 0.0, "{variant}");
        assert!(v["variants"][variant]["valid_mse"].as_f64().unwrap() < 0.9, "{variant}");
    }
    // The sub-second paths are fitted before and after the one fit that takes seconds here
    // (autograd), and their row gives the mean.
    for variant in ["exact", "dense", "lazy"] {
        let runs: Vec<f64> =
            v["variants"][variant]["runs"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(runs.len(), 2, "{variant}");
        let mean = v["variants"][variant]["fit_seconds"].as_f64().unwrap();
        assert!((mean - (runs[0] + runs[1]) / 2.0).abs() < 1e-12, "{variant}");
    }
    assert!(v["variants"]["autograd"].get("runs").is_none());
    let (exact, autograd) = (
        v["variants"]["exact"]["valid_mse"].as_f64().unwrap(),
        v["variants"]["autograd"]["valid_mse"].as_f64().unwrap(),
    );
    assert!((exact - autograd).abs() < 1e-6, "exact {exact} vs autograd {autograd}");
    assert!((exact - v["variants"]["dense"]["valid_mse"].as_f64().unwrap()).abs() < 1e-6);
    assert!(v["threads"].is_number() && v["loadavg"].is_string());
    assert_eq!(v["recommend"]["n_users"].as_u64(), Some(943));
    assert!(v["fold_in"]["mean_ms"].is_number() && v["fold_in"]["k"].as_u64() == Some(20));
    assert!(String::from_utf8_lossy(&out.stdout).contains("fastai not found for none"));
}

/// Runs the binary with extra environment variables.
fn fastcollab_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fastcollab"));
    cmd.args(args).current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Exit code 1 (an error, not a panic's 101 or a signal) and a message containing `expected`.
/// The MSE `predict` prints on stderr against a file's ratings.
fn printed_mse(stderr: &str) -> f64 {
    stderr.split("MSE ").nth(1).and_then(|s| s.split(',').next()?.parse().ok()).expect("an MSE on stderr")
}

fn fails_clearly(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit status {:?}, stderr: {stderr}", out.status);
    assert!(stderr.contains(expected), "expected {expected:?} in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_input_battery_fails_clearly_and_loses_nothing() {
    let dir = common::temp_dir("cli-battery");
    let csv = ratings_csv(&dir, 3000);
    let csv = csv.to_str().unwrap();
    assert!(fastcollab(&["train", "--ratings", csv, "--epochs", "1", "--out", "run"], &dir).status.success());
    let model = dir.join("run/models/model.pth");
    let before = std::fs::read(&model).unwrap();

    // Divergence stops at once and never overwrites the previous model.
    let out = fastcollab(&["train", "--ratings", csv, "--epochs", "2", "--lr", "1e10", "--out", "run"], &dir);
    fails_clearly(&out, "training diverged at epoch 0");
    fails_clearly(
        &fastcollab(&["train", "--ratings", csv, "--lr", "NaN", "--out", "run"], &dir),
        "lr_max (--lr) must be finite and ≥ 0, got NaN",
    );
    fails_clearly(
        &fastcollab(&["train", "--ratings", csv, "--lr=-1", "--out", "run"], &dir),
        "must be finite and ≥ 0, got -1",
    );
    assert_eq!(std::fs::read(&model).unwrap(), before, "a failed run changed the saved model");

    // A rating far outside y_range names its file, line and field.
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[40] = "7,8,1e30,50".into();
    std::fs::write(dir.join("huge.csv"), lines.join("\n") + "\n").unwrap();
    fails_clearly(
        &fastcollab(&["train", "--ratings", "huge.csv", "--out", "run"], &dir),
        "huge.csv:41: field \"rating\"",
    );

    // Environment, outputs and inputs that cannot work are refused before training.
    let out = fastcollab_env(&["train", "--ratings", csv, "--out", "run"], &dir, &[("FASTCOLLAB_THREADS", "0")]);
    fails_clearly(&out, "FASTCOLLAB_THREADS");
    std::fs::write(dir.join("afile"), "").unwrap();
    fails_clearly(&fastcollab(&["train", "--ratings", csv, "--out", "afile"], &dir), "--out afile");
    fails_clearly(&fastcollab(&["train", "--ratings", "/dev/zero"], &dir), "/dev/zero: not a regular file");
    let out = fastcollab(&["train", "--ratings", "missing.csv"], &dir);
    fails_clearly(&out, "missing.csv: No such file or directory");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("No such file").count(), 1, "the cause is printed once: {stderr}");
    assert_eq!(std::fs::read(&model).unwrap(), before);
}

/// A practitioner's own ratings: columns with other names (taken by position, as fastai does, or
/// named with --user-col, --item-col, --rating-col) and another scale (1–10 here): the output
/// range follows the ratings unless --y-range sets it, and the fit is as good as on the 1–5 scale
/// (MSE 4× for ratings 2×), where the lesson's fixed (0, 5.5) could not predict above 5.5.
#[test]
fn own_columns_and_scale_train_as_well_as_movielens() {
    let dir = common::temp_dir("cli-own-scale");
    ratings_csv(&dir, 3000);
    let stars = std::fs::read_to_string(dir.join("ratings.csv")).unwrap();
    let mut ten = String::from("user_id,item_id,score\n");
    let mut named = String::from("when,item,who,stars\n");
    for line in stars.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        ten += &format!("{},{},{}\n", f[0], f[1], 2.0 * f[2].parse::<f64>().unwrap());
        named += &format!("{},{},{},{}\n", f[3], f[1], f[0], f[2]);
    }
    std::fs::write(dir.join("ten.csv"), ten).unwrap();
    std::fs::write(dir.join("named.csv"), named).unwrap();
    let train = |csv: &str, out: &str, extra: &[&str]| {
        let args = [&["train", "--ratings", csv, "--epochs", "3", "--out", out][..], extra].concat();
        let run = fastcollab(&args, &dir);
        assert!(run.status.success());
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(out).join("metrics.json")).unwrap()).unwrap();
        let valid = metrics["valid_loss"].as_array().unwrap().last().unwrap().as_f64().unwrap();
        (valid, metrics["recipe"]["y_range"].clone(), String::from_utf8_lossy(&run.stderr).to_string())
    };
    let (base, range, _) = train("ratings.csv", "stars", &[]);
    assert_eq!(range, serde_json::json!([0.0, 5.5]));
    let (scaled, range, note) = train("ten.csv", "ten", &[]);
    assert_eq!(range, serde_json::json!([-1.25, 11.125]), "{note}");
    assert!(note.contains("users from column \"user_id\", items from \"item_id\", ratings from \"score\""), "{note}");
    assert!(note.contains("y_range (-1.25, 11.125)"), "{note}");
    assert!(scaled < 5.0 * base, "1-10 scale: valid MSE {scaled} against {base} on 1-5");
    let (capped, range, _) = train("ten.csv", "capped", &["--y-range", "0,5.5"]);
    assert_eq!(range, serde_json::json!([0.0, 5.5]));
    eprintln!("valid MSE: 1-5 stars {base}; 1-10 {scaled}; 1-10 in (0, 5.5) {capped}");
    assert!(capped > 2.0 * scaled, "(0, 5.5) on a 1-10 scale: {capped} against {scaled}");
    let (same, ..) = train("named.csv", "named", &["--user-col", "who", "--item-col", "item", "--rating-col", "stars"]);
    assert_eq!(same, base, "the same ratings from named columns");
    fails_clearly(&fastcollab(&["train", "--ratings", "ten.csv", "--y-range", "5,1"], &dir), "--y-range");
    fails_clearly(
        &fastcollab(&["train", "--ratings", "ten.csv", "--user-col", "nobody"], &dir),
        "\"nobody\": no such column",
    );
}

/// A practitioner's own ratings with text ids train, export and serve by those names.
#[test]
fn text_ids_train_and_serve_by_name() {
    let dir = common::temp_dir("cli-text-ids");
    let (data, _) = common::low_rank(21);
    let mut csv = String::from("userId,movieId,rating\n");
    for k in 0..3000 {
        let (u, i) = (data.train.users[k], data.train.items[k]);
        csv += &format!("user-{u},\"film {i}, part {}\",{:.1}\n", i % 3, data.train.ratings[k].clamp(0.5, 5.0));
    }
    std::fs::write(dir.join("mine.csv"), csv).unwrap();
    let out = fastcollab(
        &["train", "--ratings", "mine.csv", "--epochs", "2", "--out", "run", "--export", "m.safetensors"],
        &dir,
    );
    assert!(out.status.success());
    let user = format!("user-{}", data.train.users[0]);
    let out =
        fastcollab(&["recommend", "--model", "m.safetensors", "--user", &user, "-n", "3", "--output", "r.csv"], &dir);
    assert!(out.status.success());
    let r = std::fs::read_to_string(dir.join("r.csv")).unwrap();
    assert!(r.starts_with(&format!("user,rank,item,score\n{user},1,\"film ")) && r.lines().count() == 4, "{r}");
    let item = format!("film {}, part {}", data.train.items[0], data.train.items[0] % 3);
    let out = fastcollab(&["similar", "--model", "m.safetensors", "--item", &item, "-n", "2"], &dir);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).lines().count() == 3);
    // Tab-separated inputs too (the header shows the separator).
    std::fs::write(dir.join("pairs.tsv"), format!("user\titem\n{user}\t{item}\n")).unwrap();
    let out = fastcollab(&["predict", "--model", "m.safetensors", "--input", "pairs.tsv", "--output", "p.csv"], &dir);
    let p = std::fs::read_to_string(dir.join("p.csv")).unwrap();
    assert!(out.status.success() && p.starts_with(&format!("user,item,prediction\n{user},\"{item}\",")), "{p}");
}

/// `cv --ratings`: k-fold cross-validation of a file of one's own: every row validated once, the
/// output range and the relevance threshold following its scale, a typo refused by line.
#[test]
fn cv_cross_validates_a_ratings_file() {
    let dir = common::temp_dir("cli-cv-file");
    let text = std::fs::read_to_string(ratings_csv(&dir, 3000)).unwrap();
    // The same ratings on a 1–10 scale.
    let doubled: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(k, l)| {
            let mut f: Vec<String> = l.split(',').map(String::from).collect();
            if k > 0 {
                f[2] = (2.0 * f[2].parse::<f64>().unwrap()).to_string();
            }
            f.join(",")
        })
        .collect();
    std::fs::write(dir.join("ten.csv"), doubled.join("\n") + "\n").unwrap();
    let args = ["cv", "--ratings", "ten.csv", "--folds", "3", "--ranking", "--json", "cv.json"];
    let out = fastcollab(&args, &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cv.json")).unwrap()).unwrap();
    let folds = report["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 3);
    assert!(folds.iter().all(|f| f["n_test"] == 1000), "{folds:?}");
    let y_range = &folds[0]["recipe"]["y_range"];
    assert!(y_range[0].as_f64().unwrap() < 0.0 && y_range[1].as_f64().unwrap() > 10.0, "{y_range}");
    assert_eq!(report["ranking"]["relevant_from"], 7.75);
    let mut lines = doubled.clone();
    lines[40] = "7,8,1e30,50".into();
    std::fs::write(dir.join("typo.csv"), lines.join("\n") + "\n").unwrap();
    fails_clearly(&fastcollab(&["cv", "--ratings", "typo.csv"], &dir), "typo.csv:41: field \"rating\"");
    assert!(!fastcollab(&["cv", "--ratings", "ten.csv", "--ab"], &dir).status.success());
    // A given output range and named columns, as `train --ratings` takes them.
    let args = ["cv", "--ratings", "ten.csv", "--folds", "2", "--y-range", "0,11", "--rating-col", "rating"];
    let out = fastcollab(&[&args[..], &["--user-col", "userId", "--json", "cv2.json"]].concat(), &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cv2.json")).unwrap()).unwrap();
    assert_eq!(report["folds"][1]["recipe"]["y_range"], serde_json::json!([0.0, 11.0]));
    let typo = ["cv", "--ratings", "typo.csv", "--y-range", "0,11"];
    fails_clearly(&fastcollab(&typo, &dir), "typo.csv:41: field \"rating\"");
}

/// `export-split --ratings`: the rows `train --ratings` trains and validates on, as two CSV files
/// (every row once, every column): `predict` on the validation file gives the fit's validation MSE.
#[test]
fn export_split_of_a_ratings_file_is_the_split_train_uses() {
    let dir = common::temp_dir("cli-export-split");
    let csv = ratings_csv(&dir, 3000);
    let csv = csv.to_str().unwrap();
    let out = train_small(&dir, csv, &["--export", "m.safetensors"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = fastcollab(&["export-split", "--ratings", csv, "--out", "split"], &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let (all, train, valid) = (read("ratings.csv"), read("split/train.csv"), read("split/valid.csv"));
    let header = all.lines().next().unwrap();
    assert!(train.starts_with(header) && valid.starts_with(header));
    let (mut rows, want): (Vec<&str>, Vec<&str>) =
        (train.lines().skip(1).chain(valid.lines().skip(1)).collect(), all.lines().skip(1).collect());
    assert_eq!((train.lines().count() - 1, valid.lines().count() - 1), (2700, 300));
    rows.sort_unstable();
    let mut want = want;
    want.sort_unstable();
    assert_eq!(rows, want, "every row once");
    let m: serde_json::Value = serde_json::from_str(&read("run/metrics.json")).unwrap();
    let out =
        fastcollab(&["predict", "--model", "m.safetensors", "--input", "split/valid.csv", "--output", "p.csv"], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mse = printed_mse(&stderr);
    let fit = m["valid_loss"][1].as_f64().unwrap();
    assert!((mse - fit).abs() <= 1e-5 * fit, "predict's MSE {mse} on valid.csv against the fit's {fit}");
    assert!(!fastcollab(&["export-split", "--ratings", csv, "--data", "x", "--out", "s"], &dir).status.success());
}

/// `train --valid-ratings`: a split of one's own. The run validates on that file (its metrics and
/// exported provenance say so), and its ratings are checked as the training file's are.
#[test]
fn train_with_a_validation_file_of_ones_own() {
    let dir = common::temp_dir("cli-valid-file");
    let text = std::fs::read_to_string(ratings_csv(&dir, 3000)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(dir.join("early.csv"), lines[..2501].join("\n") + "\n").unwrap();
    std::fs::write(
        dir.join("late.csv"),
        [lines[0]].iter().chain(&lines[2501..]).copied().collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let args = ["train", "--ratings", "early.csv", "--valid-ratings", "late.csv", "--epochs", "2", "--out", "run"];
    let out = fastcollab(&[&args[..], &["--export", "m.safetensors"]].concat(), &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/metrics.json")).unwrap()).unwrap();
    assert_eq!(m["split"], "given");
    assert_eq!(m["valid_loss"].as_array().unwrap().len(), 2);
    let info = String::from_utf8_lossy(&fastcollab(&["info", "--model", "m.safetensors"], &dir).stdout).into_owned();
    assert!(info.contains("early.csv") && info.contains("late.csv"), "{info}");
    // `predict` on a file with ratings scores them: on the validation file, the fit's last valid loss.
    let out = fastcollab(&["predict", "--model", "m.safetensors", "--input", "late.csv", "--output", "p.csv"], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mse = printed_mse(&stderr);
    let want = m["valid_loss"][1].as_f64().unwrap();
    // To rounding: on a machine with a GPU the run trains and validates there, `predict` on the CPU.
    assert!(out.status.success() && (mse - want).abs() <= 1e-5 * want, "MSE {mse} against the fit's {want}");
    std::fs::write(dir.join("odd.csv"), format!("{}\n7,8,4,1\n7,8,four,2\n", lines[0])).unwrap();
    let out = fastcollab(&["predict", "--model", "m.safetensors", "--input", "odd.csv"], &dir);
    fails_clearly(&out, "odd.csv:3: field \"rating\": \"four\" is not a finite number");
    // A typo in the validation file is refused by line, as in the training file.
    std::fs::write(dir.join("late.csv"), format!("{}\n7,8,1e30,50\n", lines[0])).unwrap();
    fails_clearly(&fastcollab(&args, &dir), "late.csv:2: field \"rating\"");
    assert!(!fastcollab(&[&args[..], &["--valid-pct", "0.2"]].concat(), &dir).status.success());
}

/// Negative numbers are values, not options: negative ids (users and items), an output range
/// below zero, a negative threshold or popularity weight; a non-finite weight and a negative weight
/// decay are refused by our own messages, not as unknown options.
#[test]
fn negative_numbers_are_values_not_options() {
    let dir = common::temp_dir("cli-negative");
    let mut csv = String::from("userId,movieId,rating\n");
    for k in 0..3000 {
        let (u, i) = (k % 40, k * 7 % 31);
        csv += &format!("{},{},{:.1}\n", u as i64 - 20, i as i64 - 10, [-1.0, -0.5, 0.0, 0.5, 1.0][(u + i) % 5]);
    }
    std::fs::write(dir.join("signed.csv"), csv).unwrap();
    let train = |extra: &[&str]| {
        let args = [&["train", "--ratings", "signed.csv", "--epochs", "2", "--out", "run"][..], extra].concat();
        fastcollab(&args, &dir)
    };
    let out = train(&["--y-range", "-1.25,1.25", "--ranking", "--relevant-from", "-0.5", "--export", "m.safetensors"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out =
        fastcollab(&["recommend", "--model", "m.safetensors", "--user", "-3", "-n", "2", "--popularity", "-1"], &dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.lines().skip(1).all(|l| l.starts_with("-3 ")), "{text}");
    let out = fastcollab(&["similar", "--model", "m.safetensors", "--item", "-2", "-n", "2"], &dir);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).lines().count() == 3);
    let out = fastcollab(&["recommend", "--model", "m.safetensors", "--user", "-3", "--popularity", "NaN"], &dir);
    fails_clearly(&out, "--popularity must be a finite number, got NaN");
    fails_clearly(&train(&["--wd", "-1"]), "need wd ≥ 0");
}

#[test]
fn exported_model_commands_and_their_csv_columns() {
    let dir = common::temp_dir("cli-infer");
    let csv = ratings_csv(&dir, 3000);
    let csv = csv.to_str().unwrap();
    let out = train_small(&dir, csv, &["--export", "m.safetensors"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("exported the model for inference to m.safetensors"));
    let info = fastcollab(&["info", "--model", "m.safetensors"], &dir);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success() && text.contains("EmbeddingDotBias") && text.contains("provenance"), "{text}");

    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    std::fs::write(dir.join("pairs.csv"), "userId,movieId\n5,7\n99999,7\n").unwrap();
    let out = fastcollab(&["predict", "--model", "m.safetensors", "--input", "pairs.csv", "--output", "p.csv"], &dir);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 2 rows"), "unknown names are reported");
    assert!(read("p.csv").starts_with("user,item,prediction\n5,7,"));

    let out =
        fastcollab(&["recommend", "--model", "m.safetensors", "--user", "5", "-n", "3", "--output", "r.csv"], &dir);
    assert!(out.status.success());
    let r = read("r.csv");
    assert!(r.starts_with("user,rank,item,score\n5,1,") && r.lines().count() == 4, "{r}");
    // The table shows four decimals of the scores the CSV holds in full.
    let out = fastcollab(&["recommend", "--model", "m.safetensors", "--user", "5", "-n", "3"], &dir);
    let table = String::from_utf8_lossy(&out.stdout);
    let shown: Vec<&str> = table.lines().skip(1).filter_map(|l| l.split_whitespace().last()).collect();
    let full: Vec<String> =
        r.lines().skip(1).map(|l| format!("{:.4}", l.rsplit(',').next().unwrap().parse::<f32>().unwrap())).collect();
    assert!(out.status.success() && shown == full, "{table}\n{r}");
    let out = fastcollab(&["recommend", "--model", "m.safetensors", "--user", "5", "--popularity", "1.5"], &dir);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).lines().count() == 11);
    let out = fastcollab(&["recommend", "--model", "m.safetensors", "--all", "--output", "all.csv"], &dir);
    assert!(out.status.success());
    assert!(read("all.csv").lines().count() > 500);
    std::fs::write(dir.join("new.csv"), "movieId,rating\n7,5\n11,4\n").unwrap();
    let out = fastcollab(&["recommend", "--model", "m.safetensors", "--ratings", "new.csv", "-n", "2"], &dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("new") && text.lines().count() == 3, "{text}");
    // A name the model does not know, with ratings, is a new user by that name.
    let out = fastcollab(&["recommend", "--model", "m.safetensors", "--user", "zoe", "--ratings", "new.csv"], &dir);
    let (text, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stderr.contains("\"zoe\" is new to the model"), "{stderr}");
    assert!(text.lines().skip(1).all(|l| l.starts_with("zoe ")) && text.lines().count() == 11, "{text}");
    std::fs::write(dir.join("odd.csv"), "movieId,rating\n7,5\n11,lots\n").unwrap();
    fails_clearly(
        &fastcollab(&["recommend", "--model", "m.safetensors", "--ratings", "odd.csv"], &dir),
        "odd.csv:3: field \"rating\": \"lots\" is not a finite number",
    );
    let out = fastcollab(&["recommend", "--model", "m.safetensors", "--user", "99999"], &dir);
    fails_clearly(&out, "--ratings");
    let out = fastcollab(&["similar", "--model", "m.safetensors", "--item", "7", "-n", "4", "--output", "s.csv"], &dir);
    assert!(out.status.success());
    assert!(read("s.csv").starts_with("item,rank,similar,score\n7,1,"));
    // The lesson's reading of the model: item biases, PCA of the factors, the labelled plot.
    let out = fastcollab(&["interpret", "--model", "m.safetensors", "-n", "2", "--plot", "pca.png"], &dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for heading in ["item bias, lowest 2 (value, movieId, mean rating):", "fac0, highest 2", "fac1, lowest 2"] {
        assert!(text.contains(heading), "{heading} in {text}");
    }
    assert!(std::fs::metadata(dir.join("pca.png")).unwrap().len() > 10_000);
    std::fs::write(dir.join("junk.safetensors"), "not a model").unwrap();
    fails_clearly(&fastcollab(&["info", "--model", "junk.safetensors"], &dir), "junk.safetensors");
}

/// `train --items FILE`: a practitioner's model shows titles next to its item ids (recommend,
/// similar, interpret, info), finds an item by its exact title, and keeps ids where titles repeat.
#[test]
fn item_titles_travel_with_the_model() {
    let dir = common::temp_dir("cli-titles");
    let csv = ratings_csv(&dir, 3000);
    let csv = csv.to_str().unwrap();
    // movies.csv's shape: quoted titles with commas; item 2 has none; items 3 and 4 share one.
    let mut movies = String::from("movieId,title,genres\n");
    for i in 0..200 {
        let title = match i {
            2 => continue,
            3 | 4 => "\"Twin, The (1990)\"".to_string(),
            _ => format!("\"Film {i}, The ({})\"", 1900 + i),
        };
        movies += &format!("{i},{title},Drama\n");
    }
    std::fs::write(dir.join("movies.csv"), movies).unwrap();
    let out = train_small(&dir, csv, &["--items", "movies.csv", "--export", "m.safetensors"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("movies.csv: titles from column \"title\" by \"movieId\"; 1 of the model's"), "{stderr}");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();

    let out =
        fastcollab(&["recommend", "--model", "m.safetensors", "--user", "5", "-n", "3", "--output", "r.csv"], &dir);
    assert!(out.status.success());
    let r = read("r.csv");
    assert!(r.starts_with("user,rank,item,score,title\n5,1,") && r.lines().count() == 4, "{r}");
    for line in r.lines().skip(1) {
        let item = line.split(',').nth(2).unwrap();
        let want =
            if item == "2" { ",".to_string() } else { format!("The ({})\"", 1900 + item.parse::<i32>().unwrap()) };
        assert!(line.ends_with(&want) || item == "3" || item == "4", "{line}");
    }
    // By exact title, the same list as by id; a title two items share names both ids.
    let similar = |item: &str, out: &str| {
        assert!(fastcollab(&["similar", "--model", "m.safetensors", "--item", item, "-n", "4", "--output", out], &dir)
            .status
            .success());
        let mut rows = csv::Reader::from_path(dir.join(out)).unwrap();
        assert_eq!(rows.headers().unwrap(), vec!["item", "rank", "similar", "score", "title"]);
        rows.records().map(|r| r.unwrap().iter().skip(1).map(String::from).collect()).collect::<Vec<Vec<String>>>()
    };
    let by_id = similar("7", "s1.csv");
    assert!(by_id.len() == 4 && by_id.iter().all(|r| r[3].is_empty() == (r[1] == "2")), "{by_id:?}");
    assert_eq!(similar("Film 7, The (1907)", "s2.csv"), by_id);
    fails_clearly(
        &fastcollab(&["similar", "--model", "m.safetensors", "--item", "Twin, The (1990)"], &dir),
        "2 items have the title \"Twin, The (1990)\": name one by its id (3, 4)",
    );
    // Fold-in ratings may name items by title too, also in a `title` column.
    std::fs::write(dir.join("new.csv"), "movieId,rating\n\"Film 7, The (1907)\",5\n11,4\n").unwrap();
    let out = fastcollab(&["recommend", "--model", "m.safetensors", "--ratings", "new.csv", "-n", "2"], &dir);
    let by_id = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success() && by_id.lines().count() == 3, "{by_id}");
    std::fs::write(dir.join("titles.csv"), "title,rating\n\"Film 7, The (1907)\",5\n\"Film 11, The (1911)\",4\n")
        .unwrap();
    let out = fastcollab(&["recommend", "--model", "m.safetensors", "--ratings", "titles.csv", "-n", "2"], &dir);
    assert_eq!(String::from_utf8_lossy(&out.stdout), by_id);
    // `predict` reads a `title` column too, and predicts a title as its item.
    std::fs::write(dir.join("pairs.csv"), "user,title\n5,\"Film 7, The (1907)\"\n").unwrap();
    std::fs::write(dir.join("ids.csv"), "user,item\n5,7\n").unwrap();
    let predict = |input: &str| {
        let out = fastcollab(&["predict", "--model", "m.safetensors", "--input", input, "--output", "p.csv"], &dir);
        assert!(out.status.success());
        read("p.csv").lines().nth(1).unwrap().rsplit(',').next().unwrap().to_string()
    };
    assert_eq!(predict("pairs.csv"), predict("ids.csv"));
    // A title two items share is told apart from an unknown name.
    std::fs::write(dir.join("twins.csv"), "user,title\n5,\"Twin, The (1990)\"\n5,\"Film 7, The (1907)\"\n").unwrap();
    let out = fastcollab(&["predict", "--model", "m.safetensors", "--input", "twins.csv", "--output", "p.csv"], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            && err.contains("1 of 2 rows name an item by a title several items share (first: \"Twin, The (1990)\")")
            && !err.contains("does not know"),
        "{err}"
    );
    let info = fastcollab(&["info", "--model", "m.safetensors"], &dir);
    assert!(String::from_utf8_lossy(&info.stdout).contains("item titles: "), "info says the model has titles");
    let out = fastcollab(&["interpret", "--model", "m.safetensors", "-n", "2"], &dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("(value, title, mean rating)") && text.contains(", The (19"),
        "{text}"
    );

    // An id given two titles is refused by its line, and nothing is written.
    std::fs::write(dir.join("twice.csv"), "movieId,title\n1,One\n\"2\",Two\n1,Uno\n").unwrap();
    let out = train_small(&dir, csv, &["--items", "twice.csv", "--export", "other.safetensors"]);
    fails_clearly(&out, "twice.csv:4: field \"movieId\": item \"1\" has a second title, \"Uno\" (the first: \"One\")");
    assert!(!dir.join("other.safetensors").exists());
}
