//! Two threads for the phases of a step: the caller and one helper thread that spins between
//! phases. A step at scale has a few phases of tens of microseconds each; waking a sleeping thread
//! (what a pool such as rayon's does between jobs) costs about as much in a VM, so the helper
//! spins for a while after each job before it parks.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the helper spins for the next job before it parks.
const SPIN: Duration = Duration::from_micros(500);

const IDLE: u8 = 0;
const READY: u8 = 1;
const EXIT: u8 = 2;

/// A job with its borrows erased; see [`Pair::join`] for why that is sound.
type Job = Box<dyn FnOnce() + Send + 'static>;

struct Shared {
    state: AtomicU8,
    job: Mutex<Option<Job>>,
    panicked: AtomicBool,
}

/// The caller's thread and one helper, for fork–join at microsecond scale.
pub(crate) struct Pair {
    shared: Arc<Shared>,
    helper: Option<JoinHandle<()>>,
}

impl Pair {
    /// Starts the helper thread (it inherits nothing but the flush-to-zero setting it sets itself).
    pub fn new() -> Pair {
        let shared = Arc::new(Shared { state: AtomicU8::new(IDLE), job: Mutex::new(None), panicked: false.into() });
        let theirs = shared.clone();
        let helper = std::thread::Builder::new()
            .name("fastcollab-engine".into())
            .spawn(move || helper(&theirs))
            .expect("starting the engine's helper thread");
        Pair { shared, helper: Some(helper) }
    }

    /// Runs `a` on this thread and `b` on the helper, and returns both results once both are done
    /// (`&mut`: one job at a time, which the handshake below relies on).
    pub fn join<A, B: Send>(&mut self, a: impl FnOnce() -> A, b: impl FnOnce() -> B + Send) -> (A, B) {
        let mut out = None;
        let job: Box<dyn FnOnce() + Send + '_> = Box::new(|| out = Some(b()));
        // SAFETY: only the lifetime is erased. The helper runs and drops the job before it sets the
        // state back to IDLE, and `Wait` (below) does not let this frame end, by return or by
        // unwinding, before the state is IDLE again; so nothing the job borrows is used after it
        // is gone.
        let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + '_>, Job>(job) };
        *self.shared.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job);
        self.shared.state.store(READY, Ordering::Release);
        if let Some(h) = &self.helper {
            h.thread().unpark();
        }
        let wait = Wait(&self.shared);
        let a = a();
        drop(wait);
        if self.shared.panicked.swap(false, Ordering::Relaxed) {
            panic!("the engine's helper thread panicked");
        }
        (a, out.expect("the helper ran the job"))
    }
}

/// Waits, when dropped, until the helper has finished the job: spinning at first, then yielding
/// the core (on a busy machine the helper may be waiting for it).
struct Wait<'a>(&'a Shared);

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let mut spins = 0u32;
        while self.0.state.load(Ordering::Acquire) == READY {
            spins = spins.saturating_add(1);
            if spins < 1 << 14 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

fn helper(shared: &Shared) {
    let _flush = super::tables::FlushDenormals::new();
    loop {
        let since = Instant::now();
        let mut spins = 0u32;
        loop {
            match shared.state.load(Ordering::Acquire) {
                READY => break,
                EXIT => return,
                _ => {}
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) && since.elapsed() > SPIN {
                std::thread::park_timeout(Duration::from_millis(10));
            } else {
                std::hint::spin_loop();
            }
        }
        let job = shared.job.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(job) = job {
            let ok = catch_unwind(AssertUnwindSafe(job)).is_ok();
            shared.panicked.store(!ok, Ordering::Relaxed);
        }
        shared.state.store(IDLE, Ordering::Release);
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.shared.state.store(EXIT, Ordering::Release);
        if let Some(h) = self.helper.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_run_and_borrow_the_callers_data() {
        let mut pair = Pair::new();
        let mut data = vec![1u64; 1000];
        for round in 0..1000u64 {
            let (lo, hi) = data.split_at_mut(500);
            let (a, b) = pair.join(
                || lo.iter_mut().map(|x| std::mem::replace(x, *x + round)).sum::<u64>(),
                || hi.iter_mut().map(|x| std::mem::replace(x, *x + round)).sum::<u64>(),
            );
            assert_eq!(a, b);
        }
    }

    #[test]
    fn a_panic_on_the_helper_reaches_the_caller() {
        let mut pair = Pair::new();
        let r = catch_unwind(AssertUnwindSafe(|| pair.join(|| 1, || panic!("boom"))));
        assert!(r.is_err());
        assert_eq!(pair.join(|| 2, || 3), (2, 3));
    }
}
