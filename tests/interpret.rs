//! PCA on matrices with known structure, and lookups by name.
mod common;

use fastcollab::interpret::{ranked, Extremes};
use fastcollab::model::init::InitRng;
use fastcollab::{collab_learner, pca, CollabLearnerConfig, DeviceChoice, EmbeddingNNConfig, Error, ModelConfig};
use tch::{Device, Kind, Tensor};

#[test]
fn pca_recovers_known_components() {
    // Points spread along (1, 1, 0)/√2 with sd 3 and along (0, 0, 1) with sd 1, centred at (5, 5, 5).
    // Seeded and drawn under the lock every draw from libtorch's generator takes in this crate.
    let rng = InitRng::new(0);
    let a = Tensor::randn([2000, 1], (Kind::Double, Device::Cpu)) * 3.0;
    let b = Tensor::randn([2000, 1], (Kind::Double, Device::Cpu));
    drop(rng);
    let dir1 = Tensor::from_slice(&[1.0f64, 1.0, 0.0]).view([1, 3]) / 2f64.sqrt();
    let dir2 = Tensor::from_slice(&[0.0f64, 0.0, 1.0]).view([1, 3]);
    let x = (a.matmul(&dir1) + b.matmul(&dir2) + 5.0).to_kind(Kind::Float);
    let p = pca(&x, 2).unwrap();
    assert_eq!(p.projected.size(), [2000, 2]);
    let c0 = Vec::<f64>::try_from(p.components.select(1, 0).to_kind(Kind::Double)).unwrap();
    assert!(
        (c0[0].abs() - std::f64::consts::FRAC_1_SQRT_2).abs() < 0.01
            && (c0[1].abs() - std::f64::consts::FRAC_1_SQRT_2).abs() < 0.01
            && c0[2].abs() < 0.02,
        "{c0:?}"
    );
    assert!((p.explained_variance[0] - 9.0).abs() < 0.8 && (p.explained_variance[1] - 1.0).abs() < 0.15);
    assert!(p.explained_ratio[0] > 0.85);
    // Projections are centred.
    assert!(p.projected.mean(Kind::Double).double_value(&[]).abs() < 1e-4);
    assert!(matches!(pca(&x, 4), Err(Error::Shape(_))));
    let fac1 = p.factor(1).unwrap();
    assert_eq!(fac1, Vec::<f64>::try_from(p.projected.select(1, 1).to_kind(Kind::Double)).unwrap());
    assert!(p.factor(2).is_err());
}

#[test]
fn extremes_lists_both_ends_with_mean_ratings() {
    let names = ["a", "b", "c", "d"];
    let ranked = ranked(&Tensor::from_slice(&[0.5f64, -1.0, 2.0, 0.0]), &names);
    let stats = [("b".to_string(), 3, 1.5), ("c".to_string(), 9, 4.25)];
    let text = Extremes { what: "bias", name: "title", ranked: &ranked, stats: &stats, n: 2 }.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "bias, lowest 2 (value, title, mean rating):");
    assert_eq!(lines[1].split_whitespace().collect::<Vec<_>>(), ["-1.0000", "b", "1.500"]);
    assert_eq!(lines[2].split_whitespace().collect::<Vec<_>>(), ["0.0000", "d", "-"]);
    assert_eq!(lines[3], "bias, highest 2 (value, title, mean rating):");
    assert_eq!(lines[4].split_whitespace().collect::<Vec<_>>(), ["2.0000", "c", "4.250"]);
    assert_eq!(lines[5].split_whitespace().collect::<Vec<_>>(), ["0.5000", "a", "-"]);
}

#[test]
fn lookups_by_name_and_clear_errors() {
    let (data, _) = common::low_rank(11);
    let learn = collab_learner(data, &CollabLearnerConfig { device: DeviceChoice::Cpu, ..Default::default() }).unwrap();
    let b = learn.bias(&["1", "2", "3"], true).unwrap();
    assert_eq!(b.size(), [3]);
    assert_eq!(learn.weight(&["5"], false).unwrap().size(), [1, 40]);
    let err = learn.bias(&["1", "1000"], true).unwrap_err();
    assert!(matches!(err, Error::UnknownName { kind: "item", .. }), "{err}");
    assert!(err.to_string().contains("\"1000\" is not in the training vocabulary"));
    let (data, _) = common::low_rank(11);
    let model = ModelConfig::Nn(EmbeddingNNConfig { layers: vec![8], ..Default::default() });
    let nn = collab_learner(data, &CollabLearnerConfig { model, device: DeviceChoice::Cpu, ..Default::default() });
    assert!(matches!(nn.unwrap().bias(&["1"], true), Err(Error::Unsupported(_))));
}

#[test]
fn unknown_titles_suggest_close_matches() {
    let Some(dir) = common::ml100k() else { return };
    let rating_movie = fastcollab::MovieLens100k::load(&dir).unwrap().rating_movie().unwrap();
    let cfg = fastcollab::CollabConfig { item_name: Some("title".into()), ..Default::default() };
    let data = fastcollab::CollabDataBunch::from_df(&rating_movie, &cfg).unwrap();
    let learn = collab_learner(data, &CollabLearnerConfig { device: DeviceChoice::Cpu, ..Default::default() }).unwrap();
    let msg = learn.bias(&["Star Wars 1977"], true).unwrap_err().to_string();
    assert!(msg.contains("did you mean \"Star Wars (1977)\""), "{msg}");
}
