//! The thread policy: one libtorch intra-op thread unless `FASTCOLLAB_THREADS` says otherwise.
//!
//! Collaborative filtering runs thousands of tiny ops per second. With two or more intra-op threads
//! on a busy small machine, libgomp's workers spin at every op and training slows 10–100×; one
//! thread was the fastest at every batch size measured. Set `FASTCOLLAB_THREADS=N` for larger
//! models or idle many-core machines.
use std::sync::Once;

static INIT: Once = Once::new();

/// Applies the policy once per process (called by `collab_learner`).
pub fn init() {
    INIT.call_once(|| {
        let n = std::env::var("FASTCOLLAB_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
        tch::set_num_threads(n);
    });
}

/// The number of libtorch intra-op threads in use.
pub fn current() -> i32 {
    tch::get_num_threads()
}
