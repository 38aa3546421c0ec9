//! Every chart is a real, readable PNG: it decodes, has the right size and is not blank.
mod common;

use std::path::Path;

use fastcollab::plot::{plot_labelled_scatter, plot_losses, plot_lr, plot_lr_find};
use fastcollab::{collab_learner, CollabLearnerConfig, DeviceChoice, LrFindConfig};

fn check_png(path: &Path, size: (u32, u32)) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    assert_eq!(img.dimensions(), size);
    let dark = img.pixels().filter(|p| p.0.iter().map(|&c| c as u32).sum::<u32>() < 300).count();
    let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    let share = dark as f64 / (size.0 * size.1) as f64;
    assert!(share > 0.002 && share < 0.5, "{}: {share} dark (text and lines expected)", path.display());
    assert!(colours.len() > 20, "{}: only {} colours (anti-aliased text expected)", path.display(), colours.len());
}

#[test]
fn charts_are_written_and_readable() {
    let dir = common::temp_dir("plots");
    let (data, _) = common::low_rank(12);
    let mut learn =
        collab_learner(data, &CollabLearnerConfig { device: DeviceChoice::Cpu, ..Default::default() }).unwrap();
    learn.verbose = false;
    let lr = learn.lr_find(&LrFindConfig::default()).unwrap();
    plot_lr_find(&lr, &dir.join("lr_find.png"), 10, 5).unwrap();
    check_png(&dir.join("lr_find.png"), (900, 600));
    learn.fit_one_cycle(2, 1e-2).unwrap();
    plot_losses(&learn.recorder, &dir.join("losses.png")).unwrap();
    check_png(&dir.join("losses.png"), (900, 600));
    plot_lr(&learn.recorder, &dir.join("lr_mom.png")).unwrap();
    check_png(&dir.join("lr_mom.png"), (1200, 500));
    let pts: Vec<(f64, f64, String)> =
        (0..50).map(|i| ((i as f64).sin(), (i as f64 * 0.7).cos(), format!("Movie number {i} (1997)"))).collect();
    plot_labelled_scatter(&pts, &dir.join("scatter.png"), "Scatter", "fac0", "fac2").unwrap();
    check_png(&dir.join("scatter.png"), (1500, 1500));
    assert!(plot_lr_find(&lr, &dir.join("x.png"), 90, 20).is_err(), "nothing left to plot is an error");
}
