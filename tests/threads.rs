//! Two engine threads (`FASTCOLLAB_THREADS=2`) give the same bits as one. In its own test binary:
//! the variable is read by every engine built while it is set, and libtorch's thread count is fixed
//! by the first learner of a process, so it is the same (two) for both runs compared here.
mod common;

use fastcollab::data::synthetic::{generate, SyntheticConfig};
use fastcollab::{collab_learner, TrainMode};

/// Losses and weights after a short fit, with the engines' threads as `FASTCOLLAB_THREADS` says.
fn fit(mode: TrainMode, wd: f64, threads: &str) -> (Vec<f64>, Vec<Vec<f32>>) {
    std::env::set_var("FASTCOLLAB_THREADS", threads);
    // Power-law popularity, so that rows repeat within a batch and the halves are uneven.
    let cfg = SyntheticConfig { seed: 11, ..SyntheticConfig::movielens_25m(60_000) };
    // Batches of 512: two threads are used from 256 on.
    let data = generate(&cfg, 0.1, 512).unwrap();
    let mut l = collab_learner(data, &common::dot_bias_on_cpu(7, wd, mode)).unwrap();
    l.verbose = false;
    assert_eq!(l.mode(), mode);
    l.fit_one_cycle(3, 1e-2).unwrap();
    let mut losses = l.recorder.losses.clone();
    losses.extend(l.recorder.epochs.iter().filter_map(|e| e.valid_loss));
    let mut vars = l.vs.variables().into_iter().collect::<Vec<_>>();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let weights = vars.iter().map(|(_, t)| Vec::<f32>::try_from(&t.view([-1])).unwrap()).collect();
    (losses, weights)
}

#[test]
fn two_engine_threads_give_the_same_bits_as_one() {
    for (mode, wd) in
        [(TrainMode::Exact, 0.1), (TrainMode::Exact, 0.0), (TrainMode::Dense, 0.1), (TrainMode::Lazy, 0.1)]
    {
        let two = fit(mode, wd, "2");
        let one = fit(mode, wd, "1");
        assert!(two.0.iter().all(|l| l.is_finite()) && !two.0.is_empty());
        assert_eq!(two, one, "{mode:?}, wd {wd}");
    }
}
