//! The thread policy: one libtorch intra-op thread unless `FASTCOLLAB_THREADS` says otherwise.
//!
//! Collaborative filtering runs thousands of tiny ops per second. With two or more intra-op threads
//! on a busy small machine, libgomp's workers spin at every op and training slows 10–100×; one
//! thread was the fastest at every batch size measured. Set `FASTCOLLAB_THREADS=N` for larger
//! models or idle many-core machines.
use std::sync::Once;

use crate::error::{Error, Result};

static INIT: Once = Once::new();

/// The number of threads `FASTCOLLAB_THREADS` asks for (1 when unset).
pub fn requested() -> Result<i32> {
    match std::env::var("FASTCOLLAB_THREADS") {
        Err(_) => Ok(1),
        Ok(v) => v.trim().parse().ok().filter(|&n: &i32| n >= 1).ok_or_else(|| {
            Error::InvalidConfig(format!("FASTCOLLAB_THREADS must be a whole number of at least 1, got {v:?}"))
        }),
    }
}

/// Applies the policy once per process (called by `collab_learner`); a malformed
/// `FASTCOLLAB_THREADS` is an error.
pub fn init() -> Result<()> {
    let n = requested()?;
    INIT.call_once(|| tch::set_num_threads(n));
    Ok(())
}

/// Threads the CPU training engines may use: `FASTCOLLAB_THREADS` (1 when unset). With two or more
/// they run a large batch's steps on two threads, each owning half of every table's rows, the
/// second a spinning helper: on the 25M synthetic set 5 epochs took 13.4 s against 17.4 s, but a
/// spinning helper costs a busy machine a core (and on a busy host the gain can vanish), so it is
/// off by default. The results are the same bits either way.
pub fn engine_threads() -> usize {
    requested().map_or(1, |n| n as usize)
}

/// The number of libtorch intra-op threads in use.
pub fn current() -> i32 {
    tch::get_num_threads()
}
