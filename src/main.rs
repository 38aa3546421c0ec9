//! The `fastcollab` command: train, evaluate on the canonical folds, benchmark, export splits.
mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // A closed pipe (`fastcollab recommend --all | head`) ends the program quietly, as it does
    // other Unix tools, instead of a panic in the next print.
    #[cfg(unix)]
    // SAFETY: restoring the default action of one signal, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
