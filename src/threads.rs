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

/// Threads the CPU training engines may use (they use two at most, one per side of the model, and
/// only for large batches): `FASTCOLLAB_THREADS` when set, else the machine's cores.
pub fn engine_threads() -> usize {
    match std::env::var("FASTCOLLAB_THREADS") {
        Ok(_) => requested().map_or(1, |n| n as usize),
        Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// The number of libtorch intra-op threads in use.
pub fn current() -> i32 {
    tch::get_num_threads()
}
