//! Using a trained model: export, load_learner without the data, predictions, recommendations,
//! similar items, fold-in, and files that must be refused.
mod common;

use fastcollab::data::stream::load_ratings_csv;
use fastcollab::infer::rank::predict_all;
use fastcollab::{
    collab_learner, load_learner, CollabConfig, CollabLearnerConfig, DeviceChoice, EmbeddingNNConfig, Error,
    ModelConfig, TrainMode,
};
use tch::Tensor;

/// A ratings CSV of the small synthetic set (ratings clamped to 0.5–5).
fn ratings_csv(dir: &std::path::Path) -> std::path::PathBuf {
    let (data, _) = common::low_rank(31);
    let mut csv = String::from("userId,movieId,rating,timestamp\n");
    for k in 0..data.train.len() {
        let r = data.train.ratings[k].clamp(0.5, 5.0);
        csv += &format!("{},{},{r},{}\n", data.train.users[k], data.train.items[k], 1000 + k);
    }
    let path = dir.join("ratings.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

#[test]
fn export_then_load_learner_predicts_the_same_bits_without_the_data() {
    let dir = common::temp_dir("infer-export");
    let csv = ratings_csv(&dir);
    let data = load_ratings_csv(&csv, &CollabConfig::default()).unwrap();
    let cfg = common::dot_bias_on_cpu(8, 0.05, TrainMode::Auto);
    let mut learn = collab_learner(data, &cfg).unwrap();
    learn.verbose = false;
    learn.fit_one_cycle(3, 1e-2).unwrap();
    let model = dir.join("model.safetensors");
    learn.export(&model).unwrap();
    // The same model exports to the same bytes (safetensors' metadata map is in hash order, which
    // differs between two maps even in one process).
    let again = dir.join("again.safetensors");
    learn.export(&again).unwrap();
    assert!(std::fs::read(&model).unwrap() == std::fs::read(&again).unwrap(), "two exports differ");
    let valid = learn.data.valid.clone();
    let expected = learn.predict_encoded(&valid);
    let by_name = learn.predict("3", "7").unwrap();
    let seen_3: Vec<String> = (0..learn.data.train.len())
        .filter(|&k| learn.data.user_vocab.name(learn.data.train.users[k] as usize) == "3")
        .map(|k| learn.data.item_vocab.name(learn.data.train.items[k] as usize).to_string())
        .collect();
    // What the lesson reads from the learner, for the 20 most rated training items: count and mean
    // rating of their training ratings, biases, factor vectors.
    let mut stats = std::collections::BTreeMap::<String, (usize, f64)>::new();
    for (&i, &r) in learn.data.train.items.iter().zip(&learn.data.train.ratings) {
        let entry = stats.entry(learn.data.item_vocab.name(i as usize).to_string()).or_default();
        *entry = (entry.0 + 1, entry.1 + r as f64);
    }
    let mut most_rated: Vec<(String, usize, f64)> = stats.into_iter().map(|(n, (c, s))| (n, c, s / c as f64)).collect();
    most_rated.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let top: Vec<String> = most_rated.iter().take(20).map(|t| t.0.clone()).collect();
    let floats = |t: Tensor| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
    let (top_bias, top_weight) = (floats(learn.bias(&top, true).unwrap()), floats(learn.weight(&top, true).unwrap()));
    drop(learn);
    std::fs::remove_file(&csv).unwrap();

    let rec = load_learner(&model).unwrap();
    assert_eq!(rec.predict_rows(&valid.users, &valid.items), expected, "not the same bits");
    let read = rec.most_rated();
    assert_eq!(read.len(), most_rated.len());
    for (got, want) in read.iter().zip(&most_rated) {
        assert!(got.0 == want.0 && got.1 == want.1 && (got.2 - want.2).abs() < 1e-9, "{got:?} against {want:?}");
    }
    assert_eq!(floats(rec.item_bias(&top).unwrap()), top_bias);
    assert_eq!(floats(rec.item_weight(&top).unwrap()), top_weight);
    assert_eq!(rec.predict("3", "7").unwrap(), by_name);
    let m = &rec.meta;
    assert_eq!((m.format.as_str(), m.format_version), ("fastcollab", 2));
    assert_eq!(m.names, ["userId", "movieId", "rating"].map(String::from));
    assert_eq!(m.provenance.sources.len(), 1);
    assert_eq!(m.provenance.sources[0].sha256.len(), 64);
    assert_eq!(m.training.fits.len(), 1);
    assert!(m.metrics.valid_loss.is_some());

    // Recommendations never hold what the user rated, unless asked to.
    let recs = rec.recommend("3", 20, false).unwrap();
    assert_eq!(recs.len(), 20);
    assert!(recs.iter().all(|r| !seen_3.contains(&r.item)), "a rated item was recommended");
    assert!(recs.windows(2).all(|w| w[0].score >= w[1].score));
    let all = rec.recommend("3", 1000, true).unwrap();
    assert!(seen_3.iter().all(|s| all.iter().any(|r| &r.item == s)));
    // With a popularity weight: the items with the best prediction + α·ln(1 + count), as libtorch
    // computes them for every item (up to rounding: compared by score, not by order of near-ties).
    // A negative weight demotes popular items.
    let users: Vec<u32> = (1..rec.users().len() as u32).collect();
    for alpha in [0.7, -0.7] {
        let ranked = rec.recommend_rows(&users, 10, false, alpha);
        let bonus: Vec<f32> = rec.item_count().iter().map(|&c| (alpha * (c as f64).ln_1p()) as f32).collect();
        let all = predict_all(&rec.model, &users) + Tensor::from_slice(&bonus).view([1, -1]);
        for (r, (&u, got)) in users.iter().zip(&ranked).enumerate() {
            let row = Vec::<f32>::try_from(all.get(r as i64)).unwrap();
            let seen = rec.seen().items(u as usize);
            let mut want: Vec<f32> =
                (1..row.len()).filter(|i| seen.binary_search(&(*i as u32)).is_err()).map(|i| row[i]).collect();
            want.sort_by(|a, b| b.total_cmp(a));
            let got: Vec<f32> = got.iter().map(|s| row[rec.item_row(&s.item).unwrap() as usize]).collect();
            assert_eq!(got.len(), 10);
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-5, "α {alpha}, user {u}, rank {k}: {g} against the best {w}");
            }
        }
    }
    let err = rec.recommend("99999", 5, false).unwrap_err();
    assert!(matches!(err, Error::UnknownUser { .. }));
    assert!(err.to_string().contains("--ratings"), "{err}");

    // Similar items: the item itself excluded, best first, cosine.
    let sim = rec.similar_items("7", 5).unwrap();
    assert_eq!(sim.len(), 5);
    assert!(sim.iter().all(|s| s.item != "7" && (-1.0..=1.0001).contains(&s.score)));
    assert!(sim.windows(2).all(|w| w[0].score >= w[1].score));

    // Fold-in is deterministic, and a user folded in from their own ratings lands near their row.
    let cfg = rec.fold_in_config();
    let ratings: Vec<(String, f32)> = {
        let u = rec.user_row("3").unwrap() as usize;
        let seen = rec.seen();
        seen.items(u)
            .iter()
            .zip(seen.ratings(u))
            .map(|(&i, &r)| (rec.items().name(i as usize).to_string(), r))
            .collect()
    };
    let a = rec.fold_in(&ratings, &cfg).unwrap();
    assert_eq!(a, rec.fold_in(&ratings, &cfg).unwrap());
    let items: Vec<u32> = ratings.iter().map(|(i, _)| rec.item_row(i).unwrap()).collect();
    let folded = fastcollab::infer::predict_folded(&rec.model, &a, &items);
    let rmse = |p: &[f32]| {
        (p.iter().zip(&ratings).map(|(p, (_, r))| (p - r).powi(2) as f64).sum::<f64>() / p.len() as f64).sqrt()
    };
    let unknown = rec.predict_rows(&vec![0; items.len()], &items);
    assert!(rmse(&folded) < rmse(&unknown), "fold-in {} vs #na# {}", rmse(&folded), rmse(&unknown));
    assert!(rec.fold_in(&[("no such item", 4.0)], &cfg).is_err());
    let known = rec.fold_in_user("3", &[("7", 5.0)], &cfg).unwrap();
    assert_eq!(known.row.len(), 9);
    // A folded user's recommendations: the best by prediction (+ α·ln(1 + count) when asked),
    // never a rated item nor #na#, scored by prediction.
    let rated = &items[..5];
    let others: Vec<u32> = (1..rec.items().len() as u32).filter(|i| !rated.contains(i)).collect();
    let scores = fastcollab::infer::predict_folded(&rec.model, &a, &others);
    for alpha in [0.0, 1.5, -1.5] {
        let got = rec.recommend_folded(&a, 8, rated, alpha);
        let ranked = |k: usize| scores[k] + (alpha * (rec.item_count()[others[k] as usize] as f64).ln_1p()) as f32;
        let mut want: Vec<usize> = (0..others.len()).collect();
        want.sort_by(|&x, &y| ranked(y).total_cmp(&ranked(x)).then(x.cmp(&y)));
        let want: Vec<(String, f32)> =
            want[..8].iter().map(|&k| (rec.items().name(others[k] as usize).to_string(), scores[k])).collect();
        let got: Vec<(String, f32)> = got.into_iter().map(|s| (s.item, s.score)).collect();
        assert_eq!(got, want, "α {alpha}");
    }
}

/// Recommending for many users at once (in chunks, with a progress bar on a terminal) gives each
/// user what recommending for them alone gives, with or without a popularity weight, whether the
/// lists are collected or handed out one by one.
#[test]
fn recommending_for_many_users_is_recommending_for_each() {
    let dir = common::temp_dir("infer-many");
    let cfg = fastcollab::data::synthetic::SyntheticConfig {
        n_users: 40_000,
        n_items: 60,
        n_ratings: 120_000,
        rank: 3,
        factor_sd: 0.5,
        noise_sd: 0.3,
        popularity: 1.0,
        seed: 5,
    };
    let data = fastcollab::data::synthetic::generate(&cfg, 0.1, 64).unwrap();
    let learn = collab_learner(data, &common::dot_bias_on_cpu(4, 0.0, TrainMode::Auto)).unwrap();
    let model = dir.join("many.safetensors");
    learn.export(&model).unwrap();
    let rec = load_learner(&model).unwrap();
    let users: Vec<u32> = (1..rec.users().len() as u32).collect();
    assert!(users.len() > 32_768, "{} users: more than one chunk", users.len());
    for alpha in [0.0, 1.5] {
        let all = rec.recommend_rows(&users, 5, false, alpha);
        assert_eq!(all.len(), users.len());
        for k in (0..users.len()).step_by(1777).chain([users.len() - 1]) {
            assert_eq!(all[k], rec.recommend_rows(&users[k..k + 1], 5, false, alpha)[0], "user row {}", users[k]);
        }
    }
    // Lists handed out one by one (for writing as they come) are the same, and the first error stops.
    let mut handed = Vec::new();
    let stopped = rec.recommend_each(&users, 5, false, 0.0, |u, list| {
        handed.push((u, list));
        if handed.len() == 3 {
            return Err("full");
        }
        Ok(())
    });
    assert_eq!(stopped, Err("full"));
    let first: Vec<_> = users[..3].iter().copied().zip(rec.recommend_rows(&users[..3], 5, false, 0.0)).collect();
    assert_eq!(handed, first);
}

#[test]
fn truncated_corrupt_foreign_and_newer_files_are_refused() {
    let dir = common::temp_dir("infer-bad");
    let (data, _) = common::low_rank(32);
    let cfg = CollabLearnerConfig { device: DeviceChoice::Cpu, path: dir.clone(), ..Default::default() };
    let learn = collab_learner(data, &cfg).unwrap();
    let good = dir.join("good.safetensors");
    learn.export(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let write = |name: &str, content: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    };
    let truncated = write("truncated.safetensors", &bytes[..bytes.len() * 2 / 3]);
    let header_cut = write("header.safetensors", &bytes[..20]);
    let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    let random = write("random.safetensors", &noise);
    let newer = String::from_utf8_lossy(&bytes).contains("\"format_version\":\"2\"");
    assert!(newer, "the metadata holds the version as a string");
    let text = bytes.clone();
    let pos = text.windows(20).position(|w| w == b"\"format_version\":\"2\"").unwrap();
    let mut future = text.clone();
    future[pos + 18] = b'9';
    let future = write("future.safetensors", &future);
    let foreign = {
        use safetensors::tensor::{serialize, Dtype, TensorView};
        let data = [0u8; 8];
        let view = TensorView::new(Dtype::F32, vec![2], &data).unwrap();
        write("foreign.safetensors", &serialize([("w", view)], None).unwrap())
    };
    let checkpoint = learn.save("checkpoint").unwrap();
    for (path, expected) in [
        (&checkpoint, "is a training checkpoint"),
        (&truncated, "truncated or corrupt"),
        (&header_cut, "not a safetensors file"),
        (&random, "not a safetensors file"),
        (&future, "newer fastcollab"),
        (&foreign, "not a model exported by fastcollab"),
        (&dir, "not a regular file"),
    ] {
        let msg = load_learner(path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains(expected) && msg.contains(path.file_name().unwrap().to_str().unwrap()), "{msg}");
    }
    assert!(load_learner(&good).is_ok());
}

/// scripts/fastai_roundtrip.py loads an export into fastai's EmbeddingDotBias, or EmbeddingNN with
/// fastai v2's layout (its tensors under fastai's nested names), and compares predictions and how
/// the model prints; it
/// needs Python with torch, safetensors and fastai (`FASTCOLLAB_FASTAI_PYTHON`, else `python3`),
/// and says SKIPPED without them.
#[test]
fn fastai_loads_the_export_and_predicts_the_same() {
    let python = std::env::var("FASTCOLLAB_FASTAI_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python).args(["-c", "import fastai, safetensors, torch"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: no Python with fastai, safetensors and torch ({python}); set FASTCOLLAB_FASTAI_PYTHON");
        return;
    }
    let nn = EmbeddingNNConfig { layers: vec![16, 8], ps: vec![0.1], emb_drop: 0.05, ..Default::default() };
    for (n, model) in [ModelConfig::DotBias(Default::default()), ModelConfig::Nn(nn)].into_iter().enumerate() {
        let dir = common::temp_dir(&format!("infer-fastai-{n}"));
        let (data, _) = common::low_rank(33);
        let cfg = CollabLearnerConfig { model, device: DeviceChoice::Cpu, ..Default::default() };
        let mut learn = collab_learner(data, &cfg).unwrap();
        learn.verbose = false;
        learn.fit_one_cycle(2, 1e-2).unwrap();
        let model = dir.join("m.safetensors");
        learn.export(&model).unwrap();
        let preds = learn.predict_encoded(&learn.data.valid);
        let mut csv = String::from("user,item,prediction\n");
        for (k, p) in preds.iter().enumerate() {
            let (u, i) = (learn.data.valid.users[k] as usize, learn.data.valid.items[k] as usize);
            csv += &format!("{},{},{p}\n", learn.data.user_vocab.name(u), learn.data.item_vocab.name(i));
        }
        std::fs::write(dir.join("ours.csv"), csv).unwrap();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fastai_roundtrip.py");
        std::fs::write(dir.join("printed.txt"), learn.model.to_string()).unwrap();
        let out = std::process::Command::new(&python)
            .arg(script)
            .arg(&model)
            .arg(dir.join("ours.csv"))
            .arg("--printed")
            .arg(dir.join("printed.txt"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "model {n}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert!(v["max_abs_diff"].as_f64().unwrap() <= 1e-5, "model {n}: {v}");
    }
}

/// Exports written before EmbeddingNN's v2 layers took fastai's nested names (`layers.1.0.weight`),
/// with flat ones (`layers.3.weight`), still load and predict the same.
#[test]
fn embedding_nn_exports_with_the_former_flat_names_still_load() {
    let dir = common::temp_dir("infer-nn-names");
    let model = ModelConfig::Nn(EmbeddingNNConfig { layers: vec![16, 8], ..Default::default() });
    let cfg = CollabLearnerConfig { model, device: DeviceChoice::Cpu, ..Default::default() };
    let mut learn = collab_learner(common::low_rank(12).0, &cfg).unwrap();
    learn.verbose = false;
    learn.fit_one_cycle(1, 1e-2).unwrap();
    let new = dir.join("new.safetensors");
    learn.export(&new).unwrap();
    let bytes = std::fs::read(&new).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let renamed: Vec<_> =
        file.tensors().into_iter().map(|(n, v)| (learn.model.former_name(&n).unwrap_or(n), v)).collect();
    assert!(renamed.iter().any(|(n, _)| n == "layers.3.weight"), "flat names written");
    let old = dir.join("old.safetensors");
    safetensors::serialize_to_file(renamed, meta.metadata().clone(), &old).unwrap();
    let valid = &learn.data.valid;
    let predict = |path: &std::path::Path| load_learner(path).unwrap().predict_rows(&valid.users, &valid.items);
    assert_eq!(predict(&old), predict(&new));
    assert_eq!(predict(&new), learn.predict_encoded(valid));
}

/// Titles given at training travel in the export: recommendations and similar items carry them,
/// an item is found by its exact title, and a model without titles has none.
#[test]
fn item_titles_are_exported_and_served() {
    use fastcollab::data::titles::ItemTitles;
    use fastcollab::Table;
    let dir = common::temp_dir("infer-titles");
    let data = load_ratings_csv(&ratings_csv(&dir), &CollabConfig::default()).unwrap();
    let ids: Vec<i64> = (0..1000).collect();
    let titles = Table::new(
        vec!["movieId".into(), "title".into()],
        vec![
            fastcollab::data::table::Column::Int(ids.clone()),
            // Items 5 and 6 share a title, as some of MovieLens' do.
            fastcollab::data::table::Column::Str(
                ids.iter().map(|&i| if i == 5 || i == 6 { "Twin Film".into() } else { format!("Film {i}") }).collect(),
            ),
        ],
    )
    .unwrap();
    let (data, missing) = data.with_item_titles(&ItemTitles::from_table(&titles, "movieId", "title").unwrap());
    assert_eq!(missing, 0);
    let mut learn = collab_learner(data, &common::dot_bias_on_cpu(8, 0.05, TrainMode::Auto)).unwrap();
    learn.verbose = false;
    learn.fit_one_cycle(1, 1e-2).unwrap();
    let (titled, plain) = (dir.join("titled.safetensors"), dir.join("plain.safetensors"));
    learn.export(&titled).unwrap();
    learn.data.item_titles = None;
    learn.export(&plain).unwrap();

    let (rec, without) = (load_learner(&titled).unwrap(), load_learner(&plain).unwrap());
    let recs = rec.recommend("3", 5, false).unwrap();
    assert!(recs.iter().all(|s| s.title.as_deref() == Some(&format!("Film {}", s.item)[..])), "{recs:?}");
    let untitled = without.recommend("3", 5, false).unwrap();
    assert_eq!(
        recs.iter().map(|s| (&s.item, s.score)).collect::<Vec<_>>(),
        untitled.iter().map(|s| (&s.item, s.score)).collect::<Vec<_>>()
    );
    assert!(untitled.iter().all(|s| s.title.is_none()) && !without.has_item_titles());
    assert_eq!(rec.item_row("Film 7").unwrap(), rec.item_row("7").unwrap());
    assert_eq!(rec.item_title(rec.item_row("7").unwrap()), Some("Film 7"));
    assert!(without.item_row("Film 7").is_err());
    assert!(
        matches!(rec.item_row("Twin Film"), Err(fastcollab::Error::AmbiguousTitle { ids, .. }) if ids == ["5", "6"])
    );
    let pairs = [("3", "Film 7"), ("3", "7"), ("3", "Film 99999"), ("3", "Twin Film"), ("nobody", "Twin Film")];
    let (by_title, unmatched) = rec.predict_names(&pairs);
    assert!(by_title[0] == by_title[1], "{by_title:?}");
    // Unknown names and a shared title are predicted through #na#, and told apart.
    assert!(by_title[3] == by_title[2] && by_title[3] != by_title[0], "{by_title:?}");
    let want = fastcollab::Unmatched { unknown: 2, ambiguous: 1, shared_title: Some("Twin Film".into()) };
    assert_eq!(unmatched, want);
    assert_eq!(rec.similar_items("Film 7", 3).unwrap(), rec.similar_items("7", 3).unwrap());
}
