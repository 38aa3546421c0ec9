//! Training behaviour: exactness of the fast path, determinism, convergence, lr_find, save/load.
mod common;

use fastcollab::{
    collab_learner, CollabLearnerConfig, DeviceChoice, DotBiasConfig, EmbeddingNNConfig, Error, Learner, LrFindConfig,
    ModelConfig, NnLayout, OneCycle, TrainMode,
};
use tch::{Device, Tensor};

fn learner(mode: TrainMode, y_range: Option<(f64, f64)>, seed: u64) -> Learner {
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (data, _) = common::low_rank(seed);
    let cfg = CollabLearnerConfig {
        model: ModelConfig::DotBias(DotBiasConfig { n_factors: 8, y_range }),
        wd: 0.01,
        mode,
        device: DeviceChoice::Cpu,
        path: common::temp_dir(&format!("learner-{n}")),
        ..Default::default()
    };
    let mut l = collab_learner(data, &cfg).unwrap();
    l.verbose = false;
    l
}

fn weights(l: &Learner) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = l.vs.variables().into_iter().map(|(n, t)| (n, t.copy())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn exact_path_matches_autograd_over_hundreds_of_steps() {
    for y_range in [Some((0.0, 5.5)), None] {
        let mut exact = learner(TrainMode::Exact, y_range, 1);
        let mut auto = learner(TrainMode::Autograd, y_range, 1);
        assert_eq!((exact.mode(), auto.mode()), (TrainMode::Exact, TrainMode::Autograd));
        exact.fit_one_cycle(4, 1e-2).unwrap();
        auto.fit_one_cycle(4, 1e-2).unwrap();
        assert!(exact.recorder.losses.len() >= 300);
        for (a, b) in exact.recorder.losses.iter().zip(&auto.recorder.losses) {
            assert!((a - b).abs() <= 1e-5 * b.abs(), "smoothed losses differ: {a} vs {b}");
        }
        let (ve, va) = (exact.validate().unwrap(), auto.validate().unwrap());
        assert!((ve - va).abs() < 1e-5, "valid {ve} vs {va}");
        for ((n, a), (_, b)) in weights(&exact).iter().zip(&weights(&auto)) {
            let diff = (a - b).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "{n} differs by {diff}");
        }
    }
}

#[test]
fn same_seed_same_losses() {
    let run = |seed| {
        let mut l = learner(TrainMode::Auto, Some((0.0, 5.5)), seed);
        l.fit_one_cycle(2, 1e-2).unwrap();
        l.recorder.epochs.iter().map(|e| (e.train_loss, e.valid_loss)).collect::<Vec<_>>()
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
}

#[test]
fn low_rank_data_trains_to_its_noise_floor() {
    let (data, floor) = common::low_rank(5);
    let cfg = CollabLearnerConfig {
        model: ModelConfig::DotBias(DotBiasConfig { n_factors: 3, y_range: None }),
        wd: 1e-4,
        device: DeviceChoice::Cpu,
        ..Default::default()
    };
    let mut l = collab_learner(data, &cfg).unwrap();
    l.verbose = false;
    let start = l.validate().unwrap();
    l.fit_one_cycle_with(30, &OneCycle::new(3e-2)).unwrap();
    let end = l.validate().unwrap();
    assert!(end < 1.5 * floor, "valid MSE {end} vs noise floor {floor} (started at {start})");
}

#[test]
fn lazy_mode_trains_but_is_not_the_default() {
    let mut lazy = learner(TrainMode::Lazy, Some((0.0, 5.5)), 2);
    let mut exact = learner(TrainMode::Auto, Some((0.0, 5.5)), 2);
    assert_eq!(exact.mode(), TrainMode::Exact);
    lazy.fit_one_cycle(4, 1e-2).unwrap();
    exact.fit_one_cycle(4, 1e-2).unwrap();
    let (l, e) = (lazy.validate().unwrap(), exact.validate().unwrap());
    assert!(l != e && l < 0.5, "lazy {l}, exact {e}");
}

#[test]
fn embedding_nn_trains_on_the_exact_path_like_autograd() {
    let nn = EmbeddingNNConfig { layers: vec![16, 8], ..Default::default() };
    nn_exact_matches_autograd(nn.clone());
    // dense and lazy are EmbeddingDotBias kernels.
    let (data, _) = common::low_rank(6);
    for mode in [TrainMode::Lazy, TrainMode::Dense] {
        let model = ModelConfig::Nn(nn.clone());
        let cfg = CollabLearnerConfig { model, mode, device: DeviceChoice::Cpu, ..Default::default() };
        assert!(matches!(collab_learner(data.clone(), &cfg), Err(Error::Unsupported(_))));
    }
    // BatchNorm's batch statistics need two ratings: a batch of one is refused up front.
    let mut one = data.clone();
    one.bs = 1;
    let cfg = CollabLearnerConfig { model: ModelConfig::Nn(nn), device: DeviceChoice::Cpu, ..Default::default() };
    let err = collab_learner(one, &cfg).err().expect("refused").to_string();
    assert!(err.contains("BatchNorm needs training batches of at least 2"), "{err}");
    // The same when bs is lowered after the learner was built.
    let mut learn = collab_learner(data, &cfg).unwrap();
    learn.data.bs = 1;
    let err = learn.fit_one_cycle(1, 5e-3).expect_err("refused").to_string();
    assert!(err.contains("BatchNorm needs training batches of at least 2"), "{err}");
}

/// With dropout the exact path's Rust layers and the autograd path's libtorch graph apply the same
/// masks, drawn from the model's own stream in the same order: the fits agree as closely as without
/// dropout (measured 1.2e-7 relative, against 1.6e-7 without).
#[test]
fn embedding_nn_with_dropout_trains_on_the_exact_path_like_autograd() {
    let nn = EmbeddingNNConfig { layers: vec![16, 8], ps: vec![0.2], emb_drop: 0.1, ..Default::default() };
    nn_exact_matches_autograd(nn.clone());
    for (emb_drop, ps) in [(1.0, vec![]), (0.0, vec![0.2, -0.1]), (f64::NAN, vec![])] {
        let model = ModelConfig::Nn(EmbeddingNNConfig { emb_drop, ps, ..nn.clone() });
        let err = collab_learner(common::low_rank(6).0, &CollabLearnerConfig { model, ..Default::default() })
            .map(|_| ())
            .expect_err("refused")
            .to_string();
        assert!(err.contains("dropout probabilities must be in [0, 1)"), "{err}");
    }
}

/// A learner's dropout masks are its own: they follow from its seed and its own draws, not from
/// other learners built or trained meanwhile, on this thread or another (libtorch has a single
/// global generator, which every learner would otherwise share).
#[test]
fn dropout_masks_belong_to_their_learner() {
    let nn = EmbeddingNNConfig { layers: vec![16, 8], ps: vec![0.2], emb_drop: 0.1, ..Default::default() };
    let build = |seed| {
        let (data, _) = common::low_rank(6);
        let model = ModelConfig::Nn(nn.clone());
        let cfg = CollabLearnerConfig { model, seed: Some(seed), device: DeviceChoice::Cpu, ..Default::default() };
        let mut l = collab_learner(data, &cfg).unwrap();
        l.verbose = false;
        l
    };
    let fit = |l: &mut Learner| {
        l.fit_one_cycle(2, 1e-2).unwrap();
        l.recorder.losses.clone()
    };
    let alone = fit(&mut build(1));
    let mut first = build(1);
    let mut second = build(2);
    assert!(fit(&mut first) == alone, "another learner built in between changed the masks");
    let other = fit(&mut second);
    assert!(other != alone, "the seed draws the masks");
    let mut swept = build(1);
    swept.lr_find(&LrFindConfig { num_it: 40, ..Default::default() }).unwrap();
    assert!(fit(&mut swept) == alone, "lr_find's masks were not given back");
    for _ in 0..2 {
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| fit(&mut build(1)));
            let b = s.spawn(|| fit(&mut build(2)));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!((a == alone, b == other), (true, true), "learners trained on two threads at once");
    }
}

/// EmbeddingNN's BatchNorm layers start as fastai's: weight 1, bias 1e-3 in v2's layout (fastai's
/// `BatchNorm`), 0 in v1's (`nn.BatchNorm1d`). No random draw: the Linear layers after them are
/// initialised from the same draws on any device.
#[test]
fn embedding_nn_batchnorm_starts_as_fastai() {
    for (layout, bias) in [(NnLayout::V2, 1e-3), (NnLayout::V1, 0.0)] {
        let model = ModelConfig::Nn(EmbeddingNNConfig { layers: vec![16, 8], layout, ..Default::default() });
        let cfg = CollabLearnerConfig { model, device: DeviceChoice::Cpu, ..Default::default() };
        let vars = collab_learner(common::low_rank(4).0, &cfg).unwrap().vs.variables();
        let layers: Vec<&str> = vars.keys().filter_map(|k| k.strip_suffix(".running_mean")).collect();
        assert_eq!(layers.len(), 2, "{layout:?}: {layers:?}");
        for layer in layers {
            let all = |what: &str, want: f64| {
                let t = &vars[&format!("{layer}.{what}")];
                assert!(t.eq(want).all().int64_value(&[]) == 1, "{layout:?} {layer}.{what}: {t}");
            };
            all("weight", 1.0);
            all("bias", bias);
        }
    }
}

/// Trains `nn` on a toy set through the exact path and through autograd: smoothed losses and valid
/// MSE agree to 1e-5.
fn nn_exact_matches_autograd(nn: EmbeddingNNConfig) {
    let run = |mode| {
        let (data, _) = common::low_rank(6);
        let model = ModelConfig::Nn(nn.clone());
        let cfg = CollabLearnerConfig { model, mode, wd: 0.1, device: DeviceChoice::Cpu, ..Default::default() };
        let mut l = collab_learner(data, &cfg).unwrap();
        l.verbose = false;
        let before = l.validate().unwrap();
        l.fit_one_cycle(3, 1e-2).unwrap();
        assert!(l.validate().unwrap() < before);
        (l.mode(), l.recorder.losses.clone(), l.validate().unwrap(), l)
    };
    let (mode, exact, ve, l) = run(TrainMode::Auto);
    assert_eq!(mode, TrainMode::Exact, "EmbeddingNN on the CPU takes the exact sparse path");
    assert!(l.model.to_string().contains("(1): ReLU(inplace=True)"));
    let (_, auto, va, _) = run(TrainMode::Autograd);
    assert!(exact.len() > 250);
    let worst = exact.iter().zip(&auto).map(|(a, b)| (a - b).abs() / b.abs()).fold(0.0, f64::max);
    eprintln!("largest relative difference of the smoothed losses: {worst:e}");
    for (k, (a, b)) in exact.iter().zip(&auto).enumerate() {
        assert!((a - b).abs() <= 1e-5 * b.abs(), "step {k}: smoothed losses {a} vs {b}");
    }
    assert!((ve - va).abs() < 1e-5, "valid {ve} vs {va}");
}

#[test]
fn exact_path_matches_dense_over_a_long_fit_with_and_without_decay() {
    for wd in [0.1, 0.0] {
        let run = |mode| {
            let (data, _) = common::low_rank(9);
            let mut l = collab_learner(data, &common::dot_bias_on_cpu(8, wd, mode)).unwrap();
            l.verbose = false;
            // lr_find in between: its restore must leave the exact path's state consistent.
            l.fit_one_cycle(2, 1e-2).unwrap();
            l.lr_find(&LrFindConfig { num_it: 30, ..Default::default() }).unwrap();
            l.fit_one_cycle(6, 1e-2).unwrap();
            l
        };
        assert_matches_dense(&run(TrainMode::Exact), &run(TrainMode::Dense), &format!("wd {wd}"));
    }
}

/// From 32 Ki training ratings on, batches are prepared ahead on a helper thread, the exact path's
/// catch-up gaps with them: over an `lr_find` that ends within its epoch and fits that validate
/// between epochs, the exact path still matches the dense one.
#[test]
fn exact_path_prepared_ahead_matches_dense_around_lr_find() {
    use fastcollab::data::synthetic::{generate, SyntheticConfig};
    let run = |mode| {
        let cfg = SyntheticConfig { seed: 11, ..SyntheticConfig::movielens_25m(60_000) };
        let data = generate(&cfg, 0.1, 512).unwrap();
        assert!(data.train.len() >= 1 << 15);
        let mut l = collab_learner(data, &common::dot_bias_on_cpu(7, 0.1, mode)).unwrap();
        l.verbose = false;
        l.fit_one_cycle(2, 1e-2).unwrap();
        l.lr_find(&LrFindConfig { num_it: 30, ..Default::default() }).unwrap();
        l.fit_one_cycle(3, 1e-2).unwrap();
        l
    };
    assert_matches_dense(&run(TrainMode::Exact), &run(TrainMode::Dense), "prepared ahead");
}

/// Per-epoch train and validation losses of `exact` within 1e-5 relative of `dense`'s, weights
/// within 1e-4; the worst of each goes to stderr, so the margin is visible.
fn assert_matches_dense(exact: &Learner, dense: &Learner, what: &str) {
    let mut worst_loss = 0.0f64;
    for (a, b) in exact.recorder.epochs.iter().zip(&dense.recorder.epochs) {
        let (va, vb) = (a.valid_loss.unwrap(), b.valid_loss.unwrap());
        let rel = ((a.train_loss - b.train_loss).abs() / b.train_loss).max((va - vb).abs() / vb);
        assert!(rel <= 1e-5, "{what}: {a:?} vs {b:?}");
        worst_loss = worst_loss.max(rel);
    }
    let mut worst_weight = 0.0f64;
    for ((n, a), (_, b)) in weights(exact).iter().zip(&weights(dense)) {
        let diff = (a - b).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "{what}: {n} differs by {diff}");
        worst_weight = worst_weight.max(diff);
    }
    eprintln!("{what}: losses within {worst_loss:.1e} relative, weights within {worst_weight:.1e}");
}

/// The scale benchmark's settings (β2 0.99999, wd 0.001, one-cycle momentums 0.95–0.85, no output
/// range, power-law popularity, bs 1024), at its default width and at 40 factors with the learning
/// rate chosen for that width: the exact path is the dense one, up to rounding.
#[test]
fn exact_path_matches_dense_with_the_scale_benchmarks_settings() {
    use fastcollab::data::synthetic::{generate, SyntheticConfig};
    let data = generate(&SyntheticConfig::movielens_25m(200_000), 0.1, 1024).unwrap();
    for (n_factors, lr) in [(10, 3e-3), (40, 1.5e-3)] {
        let run = |mode| {
            let cfg = CollabLearnerConfig {
                model: ModelConfig::DotBias(DotBiasConfig { n_factors, y_range: None }),
                wd: 0.001,
                beta2: 0.99999,
                eps: 1e-8,
                mode,
                device: DeviceChoice::Cpu,
                ..Default::default()
            };
            let mut l = collab_learner(data.clone(), &cfg).unwrap();
            l.verbose = false;
            l.fit_one_cycle_with(5, &OneCycle { moms: (0.95, 0.85), ..OneCycle::new(lr) }).unwrap();
            assert_eq!(l.recorder.mode, Some(mode), "the path that trained");
            l
        };
        assert_matches_dense(&run(TrainMode::Exact), &run(TrainMode::Dense), &format!("{n_factors} factors"));
    }
}

#[test]
fn validation_between_epochs_is_the_same_bits_as_after_the_fit() {
    // Between epochs the CPU engines validate from their own tables; after the last epoch the
    // learner validates from its tensors. With a constant schedule the first epoch of a two-epoch
    // fit and a one-epoch fit are the same computation.
    for mode in [TrainMode::Exact, TrainMode::Dense, TrainMode::Lazy] {
        for y_range in [Some((0.0, 5.5)), None] {
            let first_epoch = |epochs| {
                let mut l = learner(mode, y_range, 4);
                l.fit_with(epochs, |_| (1e-2, 0.9)).unwrap();
                l.recorder.epochs[0].valid_loss.unwrap()
            };
            assert_eq!(first_epoch(2).to_bits(), first_epoch(1).to_bits(), "{mode:?}, y_range {y_range:?}");
        }
    }
}

#[test]
fn metrics_name_the_path_that_trained() {
    // ε above what the closed-form catch-up follows accurately: the dense path, with the same
    // semantics, stands in for the exact one, and the metrics say so.
    let (data, _) = common::low_rank(2);
    let cfg = CollabLearnerConfig { eps: 1e-5, ..common::dot_bias_on_cpu(8, 0.01, TrainMode::Exact) };
    let mut l = collab_learner(data, &cfg).unwrap();
    l.verbose = false;
    assert_eq!(l.metrics().mode, "exact", "before a fit: the mode asked for");
    l.fit_one_cycle(1, 1e-2).unwrap();
    assert_eq!((l.mode(), l.metrics().mode.as_str()), (TrainMode::Exact, "dense"));
    let mut l = learner(TrainMode::Exact, Some((0.0, 5.5)), 2);
    l.fit_one_cycle(1, 1e-2).unwrap();
    assert_eq!(l.metrics().mode, "exact");
}

#[test]
fn a_fit_of_half_a_million_steps_stays_on_the_exact_path() {
    // Before the catch-up's blocks were built as a fit goes, a schedule this long exceeded their
    // size limit and was trained densely (reported as exact).
    let (mut data, _) = common::low_rank(3);
    data.bs = 1;
    let epochs = 470_000 / data.n_train_batches() + 1;
    let mut l = collab_learner(data, &common::dot_bias_on_cpu(8, 0.01, TrainMode::Exact)).unwrap();
    l.verbose = false;
    l.fit_one_cycle(epochs, 1e-3).unwrap();
    assert!(l.recorder.losses.len() > 470_000);
    assert_eq!(l.metrics().mode, "exact");
    let valid = l.recorder.epochs.iter().map(|e| e.valid_loss.unwrap()).collect::<Vec<_>>();
    assert!(valid[valid.len() - 1] < 0.5 * valid[0], "it trained: {valid:?}");
}

#[test]
fn changing_dtype_between_fits_is_safe() {
    let mut l = learner(TrainMode::Auto, Some((0.0, 5.5)), 15);
    l.fit(1, 1e-3).unwrap();
    assert_eq!(l.mode(), TrainMode::Exact);
    // The engines keep no pointer into the tensors: a caller may change them between fits.
    l.vs.double();
    assert_eq!(l.mode(), TrainMode::Autograd, "f64 parameters train through autograd");
    l.fit(1, 1e-3).unwrap();
    assert!(l.vs.variables().values().all(|t| t.kind() == tch::Kind::Double));
    assert!(l.validate().unwrap().is_finite());
    l.vs.float();
    assert_eq!(l.mode(), TrainMode::Exact);
    l.fit(1, 1e-3).unwrap();
    assert!(l.validate().unwrap().is_finite());
    // An explicit CPU-kernel mode on f64 parameters is refused, not run.
    let mut exact = learner(TrainMode::Exact, Some((0.0, 5.5)), 15);
    exact.vs.double();
    let err = exact.fit(1, 1e-3).unwrap_err().to_string();
    assert!(err.contains("needs f32 parameters on the CPU"), "{err}");
}

/// A fit flushes subnormal floats to zero on its thread (Adam's decaying moments would be slow),
/// and puts the thread's floating-point mode back when it ends, fails or is refused: code that
/// runs after it on the caller's thread computes as it did before.
#[test]
fn a_fit_leaves_the_callers_floating_point_mode_as_it_found_it() {
    let subnormal = || std::hint::black_box(1e-30f32) * std::hint::black_box(1e-10f32);
    assert!(subnormal() > 0.0, "this thread keeps subnormals to start with");
    for mode in [TrainMode::Exact, TrainMode::Dense, TrainMode::Lazy, TrainMode::Autograd] {
        let mut l = learner(mode, None, 3);
        l.fit_one_cycle(1, 1e-2).unwrap();
        assert!(subnormal() > 0.0, "{mode:?}: the fit left subnormals flushed on the caller's thread");
        let err = l.fit(1, 1e30).expect_err("diverges");
        assert!(matches!(err, Error::Diverged { .. }), "{err}");
        assert!(subnormal() > 0.0, "{mode:?}: the failed fit left subnormals flushed");
    }
}

#[test]
fn lr_find_restores_the_learner_bit_exactly() {
    for mode in [TrainMode::Exact, TrainMode::Autograd] {
        let mut l = learner(mode, Some((0.0, 5.5)), 7);
        l.fit(1, 1e-3).unwrap();
        let before = weights(&l);
        let lr = l.lr_find(&LrFindConfig { num_it: 60, ..Default::default() }).unwrap();
        assert!(lr.lrs.len() <= 60 && lr.lrs.len() > 10);
        for ((n, a), (_, b)) in before.iter().zip(&weights(&l)) {
            assert!(a.equal(b), "{n} changed by lr_find ({mode:?})");
        }
        // Training afterwards is what it would have been without the sweep.
        let mut twin = learner(mode, Some((0.0, 5.5)), 7);
        twin.fit(1, 1e-3).unwrap();
        l.fit(1, 1e-3).unwrap();
        twin.fit(1, 1e-3).unwrap();
        assert_eq!(l.recorder.losses, twin.recorder.losses);
    }
}

/// The same seed gives the same model file, byte for byte (the write goes through a temporary
/// folder, so the archive is named after the file, not after a random temporary name).
#[test]
fn the_same_fit_saves_the_same_bytes() {
    let files: Vec<Vec<u8>> = (0..2)
        .map(|_| {
            let mut l = learner(TrainMode::Auto, Some((0.0, 5.5)), 8);
            l.fit(1, 1e-2).unwrap();
            std::fs::read(l.save("m").unwrap()).unwrap()
        })
        .collect();
    assert!(files[0] == files[1], "two saves of the same fit differ");
}

#[test]
fn save_load_round_trip_and_refusals() {
    let mut a = learner(TrainMode::Auto, Some((0.0, 5.5)), 8);
    a.fit(1, 1e-2).unwrap();
    let path = a.save("m").unwrap();
    assert!(path.ends_with("models/m.pth"));
    let mut b = learner(TrainMode::Auto, Some((0.0, 5.5)), 8);
    b.fit(1, 5e-3).unwrap(); // other weights, same shuffling state as `a`
    b.load_file(&path).unwrap();
    for ((n, x), (_, y)) in weights(&a).iter().zip(&weights(&b)) {
        assert!(x.equal(y), "{n} differs after load");
    }
    // Same optimizer state too: one more identical step gives identical weights.
    a.fit(1, 1e-3).unwrap();
    b.fit(1, 1e-3).unwrap();
    assert_eq!(a.recorder.losses, b.recorder.losses);

    // (A save that fails half-way keeps the old file: `fsutil`'s unit test.)

    // A model of another shape is refused with a clear message.
    let mut other = collab_learner(
        common::low_rank(8).0,
        &CollabLearnerConfig {
            model: ModelConfig::DotBias(DotBiasConfig { n_factors: 5, y_range: None }),
            device: DeviceChoice::Cpu,
            ..Default::default()
        },
    )
    .unwrap();
    let msg = other.load_file(&path).unwrap_err().to_string();
    assert!(msg.contains("shape") && msg.contains("m.pth"), "{msg}");
    assert!(b.load("missing").unwrap_err().to_string().contains("missing.pth"));
}

/// EmbeddingNN's v2 layers are saved under fastai's nested names (`layers.1.0.weight`); files
/// written before, with flat names (`layers.3.weight`), still load, optimizer state included.
#[test]
fn embedding_nn_files_with_the_former_flat_names_still_load() {
    let dir = common::temp_dir("nn-names");
    let nn = || {
        let model = ModelConfig::Nn(EmbeddingNNConfig { layers: vec![16, 8], ..Default::default() });
        let cfg = CollabLearnerConfig { model, device: DeviceChoice::Cpu, path: dir.clone(), ..Default::default() };
        let mut l = collab_learner(common::low_rank(9).0, &cfg).unwrap();
        l.verbose = false;
        l
    };
    let mut a = nn();
    a.fit(1, 1e-2).unwrap();
    let saved = Tensor::load_multi(a.save("m").unwrap()).unwrap();
    assert!(saved.iter().any(|(n, _)| n == "layers.1.0.weight") && saved.iter().any(|(n, _)| n == "opt.step"));
    let former: Vec<(String, Tensor)> =
        saved.into_iter().map(|(name, t)| (a.model.former_name(&name).unwrap_or(name), t)).collect();
    assert!(
        former.iter().any(|(n, _)| n == "layers.3.weight")
            && former.iter().any(|(n, _)| n == "opt.exp_avg.layers.3.weight")
    );
    let old = a.model_dir().join("old.pth");
    Tensor::save_multi(&former, &old).unwrap();
    let mut b = nn();
    b.fit(1, 5e-3).unwrap();
    b.load_file(&old).unwrap();
    for ((n, x), (_, y)) in weights(&a).iter().zip(&weights(&b)) {
        assert!(x.equal(y), "{n} differs after load");
    }
    a.fit(1, 1e-3).unwrap();
    b.fit(1, 1e-3).unwrap();
    assert_eq!(a.recorder.losses, b.recorder.losses, "the optimizer state loaded too");
}

#[test]
fn load_refuses_bad_files_and_changes_nothing() {
    let mut a = learner(TrainMode::Auto, Some((0.0, 5.5)), 16);
    a.fit(1, 1e-2).unwrap();
    let good = a.save("good").unwrap();
    let dir = good.parent().unwrap().to_path_buf();
    let bytes = std::fs::read(&good).unwrap();
    let mut b = learner(TrainMode::Auto, Some((0.0, 5.5)), 17);
    b.fit(1, 1e-2).unwrap();
    let before = weights(&b);
    let write = |name: &str, content: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    };
    let noise: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let truncated = write("truncated.pth", &bytes[..bytes.len() / 2]);
    let random = write("random.pth", &noise);
    let cases = [(truncated, "cannot be read"), (random, "cannot be read"), (dir.clone(), "not a regular file")];
    for (path, expected) in cases {
        let msg = b.load_file(&path).unwrap_err().to_string();
        assert!(msg.contains(expected) && msg.contains(path.file_name().unwrap().to_str().unwrap()), "{msg}");
    }
    // Other sizes and element types are refused before anything is copied.
    let mut other = learner(TrainMode::Auto, Some((0.0, 5.5)), 16);
    other.vs.double();
    let f64_file = other.save("double").unwrap();
    let msg = b.load_file(&f64_file).unwrap_err().to_string();
    assert!(msg.contains("holds Double"), "{msg}");
    // Same shapes, other names (another split of other data): refused, rows would mean other items.
    let (mut data, _) = common::low_rank(16);
    let mut names = data.item_vocab.names().to_vec();
    names[5] = "999".into();
    data.item_vocab = fastcollab::Vocab::from_names(names, true);
    let cfg = CollabLearnerConfig {
        model: ModelConfig::DotBias(DotBiasConfig { n_factors: 8, y_range: Some((0.0, 5.5)) }),
        device: DeviceChoice::Cpu,
        ..Default::default()
    };
    let mut renamed = collab_learner(data, &cfg).unwrap();
    let msg = renamed.load_file(&good).unwrap_err().to_string();
    assert!(msg.contains("vocabulary differs"), "{msg}");
    for ((n, x), (_, y)) in before.iter().zip(&weights(&b)) {
        assert!(x.equal(y), "{n} changed by a refused load");
    }
    b.load_file(&good).unwrap();
}

#[test]
fn predict_by_name_and_unknown_names() {
    let l = learner(TrainMode::Auto, Some((0.0, 5.5)), 10);
    let p = l.predict("1", "2").unwrap();
    assert!((0.0..5.5).contains(&p));
    let msg = l.predict("1", "99999").unwrap_err().to_string();
    assert!(msg.contains("item \"99999\" is not in the training vocabulary"), "{msg}");
}

#[test]
fn initialisation_is_deterministic_across_threads() {
    let build = || {
        std::thread::spawn(|| {
            let (data, _) = common::low_rank(13);
            let l =
                collab_learner(data, &CollabLearnerConfig { device: DeviceChoice::Cpu, ..Default::default() }).unwrap();
            weights(&l)
        })
    };
    let handles: Vec<_> = (0..4).map(|_| build()).collect();
    let all: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for w in &all[1..] {
        for ((n, a), (_, b)) in all[0].iter().zip(w) {
            assert!(a.equal(b), "{n} differs between threads");
        }
    }
}

#[test]
fn device_placement_is_consistent_on_cpu() {
    let (data, _) = common::low_rank(14);
    // `auto`: both models on the CPU (their exact engines), also where a GPU is visible.
    let nn = ModelConfig::Nn(EmbeddingNNConfig { layers: vec![8], ..Default::default() });
    let l = collab_learner(data.clone(), &CollabLearnerConfig { model: nn, ..Default::default() }).unwrap();
    assert_eq!(l.device(), Device::Cpu);
    assert_eq!(l.mode(), TrainMode::Exact);
    let err = DeviceChoice::Cuda(99).resolve().unwrap_err();
    assert!(err.to_string().contains("cuda:99 asked for"), "{err}");
    assert_eq!("cuda:1".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(1));
    assert!("gpu".parse::<DeviceChoice>().is_err());
    let mut l = collab_learner(data, &CollabLearnerConfig::default()).unwrap();
    l.verbose = false;
    assert_eq!(l.device(), Device::Cpu);
    assert!(l.vs.variables().values().all(|t| t.device() == l.device()));
    l.fit(1, 1e-3).unwrap();
    assert!(l.vs.variables().values().all(|t| t.device() == l.device()), "training keeps variables in place");
    // Read-only lookups come back on the CPU, whatever the model's device.
    assert_eq!(l.bias(&["1"], true).unwrap().device(), Device::Cpu);
    assert_eq!(l.weight(&["1"], false).unwrap().device(), Device::Cpu);
}

/// Where a GPU is visible (skipped, saying so, elsewhere): both models train on `cuda` through
/// autograd from the same initial weights as the CPU's exact engines, and their losses agree to
/// 1e-5 at every step (the GPU kernels round differently); a model trained there exports, and the
/// export predicts on the CPU what the learner predicts.
#[test]
fn training_on_a_gpu_matches_the_cpu_where_one_is_visible() {
    if !tch::Cuda::is_available() {
        eprintln!("SKIPPED: no CUDA device visible");
        return;
    }
    let dot = ModelConfig::DotBias(DotBiasConfig { n_factors: 8, y_range: Some((0.0, 5.5)) });
    let nn = ModelConfig::Nn(EmbeddingNNConfig { layers: vec![16], ..Default::default() });
    for (n, model) in [dot, nn].into_iter().enumerate() {
        let (data, _) = common::low_rank(3);
        let dir = common::temp_dir(&format!("gpu-{n}"));
        let fit = |device| {
            let cfg =
                CollabLearnerConfig { model: model.clone(), wd: 0.01, device, path: dir.clone(), ..Default::default() };
            let mut l = collab_learner(data.clone(), &cfg).unwrap();
            l.verbose = false;
            l.fit_one_cycle(3, 1e-2).unwrap();
            l
        };
        let (gpu, cpu) = (fit(DeviceChoice::Cuda(0)), fit(DeviceChoice::Cpu));
        assert_eq!((gpu.device(), gpu.mode()), (Device::Cuda(0), TrainMode::Autograd));
        assert_eq!((cpu.device(), cpu.mode()), (Device::Cpu, TrainMode::Exact));
        // Measured on an H200: 1.2e-7 (EmbeddingDotBias) and 1.0e-7 (EmbeddingNN) at most.
        let rel = |g: f64, c: f64| (g - c).abs() / c.abs();
        let worst = gpu.recorder.losses.iter().zip(&cpu.recorder.losses).map(|(&g, &c)| rel(g, c)).fold(0.0, f64::max);
        eprintln!("model {n}: largest relative difference of the smoothed losses: {worst:e}");
        assert!(gpu.recorder.losses.len() > 250 && worst <= 1e-5, "model {n}: smoothed losses {worst:e} apart");
        for (g, c) in gpu.recorder.epochs.iter().zip(&cpu.recorder.epochs) {
            let (g, c) = (g.valid_loss.unwrap(), c.valid_loss.unwrap());
            assert!(rel(g, c) <= 1e-5, "model {n}: valid loss {g} on the GPU against {c} on the CPU");
        }
        let file = dir.join("model.safetensors");
        gpu.export(&file).unwrap();
        let valid = gpu.data.valid.clone();
        let on_gpu = gpu.predict_encoded(&valid);
        let exported = fastcollab::load_learner(&file).unwrap().predict_rows(&valid.users, &valid.items);
        for (a, b) in on_gpu.iter().zip(&exported) {
            assert!((a - b).abs() <= 1e-4, "model {n}: {a} predicted on the GPU, {b} by its export");
        }
    }
}
