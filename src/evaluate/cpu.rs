//! CPU time while a benchmark trains: the process's, its training thread's and its batch helper's,
//! the other processes' on the machine, and the hypervisor's steal, so that a run slowed by
//! something besides the code shows it.
//!
//! The exact path keeps both of these machines' cores busy (its steps on the training thread, its
//! batches prepared on a helper) where the dense path's steps run on one: a process that takes
//! part of a core slows the first far more than the second. With a busy loop on one core, 25M fits
//! at 10 factors took 7.2–7.7 s against 4.3–4.5 s, the dense path 22.3–22.8 s an epoch against
//! 22.0–22.7 s (README, "What slows one path and not the other").
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use crate::learner::engine::HELPER_THREAD;

/// CPU seconds over a stretch of work (0 where the system cannot say).
#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    /// This process, all its threads together.
    pub process_seconds: f64,
    /// The part of `process_seconds` spent in the kernel on the process's behalf (page faults,
    /// waking threads).
    pub kernel_seconds: f64,
    /// Pages the process touched for the first time (minor page faults): fresh memory, which
    /// these VMs back slowly for some minutes after other work has freed much of theirs.
    pub page_faults: u64,
    /// The thread that ran the fit and its steps (with two engine threads, `FASTCOLLAB_THREADS=2`,
    /// the first of them).
    pub training_thread_seconds: f64,
    /// The threads that prepared batches ahead of the steps and copied their records (those that
    /// ended before the fit did, to within a sampling period of 0.05 s).
    pub helper_seconds: f64,
    /// The machine's other processes (`/proc/stat`'s busy time less this process's).
    pub others_seconds: f64,
    /// Time the hypervisor gave this machine's virtual CPUs to others while they had work
    /// (`/proc/stat`'s steal; 0 where the hypervisor does not report it).
    pub steal_seconds: f64,
}

/// Measures [`CpuUse`] from [`CpuWatch::start`], called on the training thread, to
/// [`CpuWatch::finish`], called on the same thread.
pub(crate) struct CpuWatch {
    before: Clock,
    training: f64,
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<Seen>>,
}

/// Each batch helper seen (by thread id) and its CPU seconds when last seen.
type Seen = std::collections::BTreeMap<u64, f64>;

impl CpuWatch {
    /// Starts measuring; a sampler thread follows the batch helpers' CPU time while they live.
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let sampler = std::thread::Builder::new()
            .name("fastcollab-cpu".into())
            .spawn(move || {
                let mut seen = Seen::new();
                while !flag.load(Ordering::Relaxed) {
                    seen.extend(helper_threads());
                    std::thread::sleep(Duration::from_millis(50));
                }
                seen
            })
            .ok();
        CpuWatch { before: Clock::now(), training: thread_seconds(), stop, sampler }
    }

    /// The CPU time since `start`; `paused` CPU seconds of the training thread (work timed apart,
    /// such as the dense windows) are left out of its figure.
    pub fn finish(mut self, paused: f64) -> CpuUse {
        let now = Clock::now();
        let training_thread_seconds = thread_seconds() - self.training - paused;
        self.stop.store(true, Ordering::Relaxed);
        let mut helpers = self.sampler.take().and_then(|s| s.join().ok()).unwrap_or_default();
        // Helpers still alive are read once more, now.
        helpers.extend(helper_threads());
        let helper_seconds = helpers.values().sum();
        let process_seconds = now.process - self.before.process;
        let busy = now.busy - self.before.busy;
        CpuUse {
            process_seconds,
            kernel_seconds: now.kernel - self.before.kernel,
            page_faults: now.faults.saturating_sub(self.before.faults),
            training_thread_seconds,
            helper_seconds,
            others_seconds: if busy > 0.0 { (busy - process_seconds).max(0.0) } else { 0.0 },
            steal_seconds: now.steal - self.before.steal,
        }
    }
}

impl Drop for CpuWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// CPU time so far: this process's (and its kernel part, and its minor page faults), the machine's
/// busy time, and its steal.
struct Clock {
    process: f64,
    kernel: f64,
    faults: u64,
    busy: f64,
    steal: f64,
}

impl Clock {
    fn now() -> Self {
        #[cfg(unix)]
        // SAFETY: `getrusage` fills the `rusage` it is given and keeps no pointer to it.
        let (user, kernel, faults) = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut usage);
            let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
            (seconds(usage.ru_utime), seconds(usage.ru_stime), usage.ru_minflt.max(0) as u64)
        };
        #[cfg(not(unix))]
        let (user, kernel, faults) = (0.0, 0.0, 0);
        // The first line of /proc/stat: user nice system idle iowait irq softirq steal …, in ticks.
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<f64> = stat
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("cpu "))
            .map(|l| l.split_whitespace().filter_map(|t| t.parse().ok()).collect())
            .unwrap_or_default();
        let hz = ticks_per_second();
        let tick = |i: usize| ticks.get(i).copied().unwrap_or(0.0) / hz;
        Clock {
            process: user + kernel,
            kernel,
            faults,
            busy: [0, 1, 2, 5, 6].into_iter().map(tick).sum(),
            steal: tick(7),
        }
    }
}

/// The calling thread's CPU seconds so far (0 where the system cannot say).
pub(crate) fn thread_seconds() -> f64 {
    #[cfg(unix)]
    // SAFETY: `clock_gettime` fills the `timespec` it is given and keeps no pointer to it.
    unsafe {
        let mut t: libc::timespec = std::mem::zeroed();
        if libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) == 0 {
            return t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9;
        }
    }
    0.0
}

/// The kernel's clock ticks per second, the unit of `/proc`'s CPU times.
fn ticks_per_second() -> f64 {
    #[cfg(unix)]
    // SAFETY: `sysconf` reads a constant of the system.
    return unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    #[cfg(not(unix))]
    100.0
}

/// Each live batch helper of this process (by thread id) and its CPU seconds so far.
fn helper_threads() -> Vec<(u64, f64)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    let hz = ticks_per_second();
    let mut found = Vec::new();
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        // Linux keeps the first 15 bytes of a thread's name.
        if comm.trim_end() != &HELPER_THREAD[..HELPER_THREAD.len().min(15)] {
            continue;
        }
        let (Ok(tid), Ok(stat)) =
            (task.file_name().to_string_lossy().parse(), std::fs::read_to_string(task.path().join("stat")))
        else {
            continue;
        };
        // The fields after the name (which ends at the last ')'): state is the 3rd, utime and
        // stime the 14th and 15th.
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
        let ticks = |i: usize| fields.get(i - 3).and_then(|t| t.parse::<f64>().ok()).unwrap_or(0.0);
        found.push((tid, (ticks(14) + ticks(15)) / hz));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Works until the calling thread has used `seconds` of CPU time.
    fn spin(seconds: f64) {
        let start = thread_seconds();
        let mut x = 0u64;
        while thread_seconds() - start < seconds {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }

    /// The watch credits a thread named as the batch helper to the helper, the calling thread's
    /// own work to the training thread (less what it is told was paused), and both to the process,
    /// and counts the fresh pages touched.
    #[test]
    fn cpu_time_is_credited_to_its_threads() {
        if !std::path::Path::new("/proc/self/task").exists() {
            eprintln!("SKIPPED: no /proc here, so the batch helper's CPU time cannot be read");
            return;
        }
        let watch = CpuWatch::start();
        let (done, worked) = std::sync::mpsc::channel();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let helper = std::thread::Builder::new()
            .name(HELPER_THREAD.into())
            .spawn(move || {
                spin(0.3);
                done.send(()).unwrap();
                // Alive until the watch has finished, as a fit's helper is.
                let _ = wait.recv();
            })
            .unwrap();
        spin(0.2);
        // 20 MiB touched for the first time: 5,120 fresh pages of 4 KiB, or, where transparent huge
        // pages are always on, at least the 9 whole 2 MiB pages inside it.
        let fresh = std::hint::black_box(vec![1u8; 20 << 20]);
        worked.recv().unwrap();
        let cpu = watch.finish(0.1);
        release.send(()).unwrap();
        helper.join().unwrap();
        // /proc counts in ticks of 10 ms, the thread clock in nanoseconds; a helper of another test
        // running meanwhile (the feed's tests start some) adds a little.
        assert!((0.28..0.5).contains(&cpu.helper_seconds), "{cpu:?}");
        assert!((0.1..0.3).contains(&cpu.training_thread_seconds), "{cpu:?}");
        assert!(cpu.process_seconds >= 0.45 && cpu.kernel_seconds >= 0.0 && cpu.others_seconds >= 0.0, "{cpu:?}");
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        let least = if thp.contains("[always]") { 9 } else { 4_000 };
        assert!(cpu.page_faults >= least, "{cpu:?}");
        drop(fresh);
    }
}
