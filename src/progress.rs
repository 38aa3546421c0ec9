//! Progress bars that show on a terminal and stay silent in logs and CI.
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

fn visible() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

fn bar(len: Option<u64>, template: &str, message: &str) -> ProgressBar {
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    if !visible() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_message(message.to_string());
    bar
}

/// A bar over `n` batches whose message is the smoothed loss (fastprogress' layout).
pub(crate) fn batch_bar(n: u64, prefix: &str) -> ProgressBar {
    let b = bar(Some(n), "{prefix} {percent:>3}% [{pos}/{len} {elapsed}<{eta} {msg}]", "");
    b.set_prefix(prefix.to_string());
    b
}

/// A bar over the bytes of a download.
pub(crate) fn bytes_bar(len: Option<u64>, message: &str) -> ProgressBar {
    bar(len, "{msg} {bytes}/{total_bytes} {bytes_per_sec}", message)
}

/// A bar over `n` things (users ranked, say).
pub(crate) fn count_bar(n: u64, message: &str) -> ProgressBar {
    bar(Some(n), "{msg} {percent:>3}% [{pos}/{len} {elapsed}<{eta}]", message)
}
