//! fastcollab: fastai's collaborative filtering (course-v3 lesson 5) in Rust on libtorch.
//!
//! The pieces compose like fastai's: read ratings into a [`Table`], build a
//! [`CollabDataBunch`], get a [`Learner`] from [`collab_learner`], then `lr_find`,
//! `fit_one_cycle`, `save`/`load`, and interpret biases and factors (the README's lesson, which
//! `tests/examples.rs` keeps the same as this example):
//!
//! ```no_run
//! # use fastcollab::interpret::most_rated;
//! # use fastcollab::*;
//! # use std::path::Path;
//! # fn main() -> fastcollab::Result<()> {
//! let path = untar_data(&DatasetSpec::ml_100k())?;                 // downloads once, verified
//! let ml = MovieLens100k::load(&path)?;                              // u.data (tab), u.item (latin-1)
//! let rating_movie = ml.rating_movie()?;                             // ratings.merge(movies[[movieId, title]])
//! let data = CollabDataBunch::from_df(&rating_movie, &CollabConfig {
//!     item_name: Some("title".into()), valid_pct: 0.1, seed: 42, ..Default::default() })?;
//! println!("{}", data.show_batch(8));
//! let model = ModelConfig::DotBias(DotBiasConfig { n_factors: 40, y_range: Some((0.0, 5.5)) });
//! let mut learn = collab_learner(data, &CollabLearnerConfig { model, wd: 0.1, ..Default::default() })?;
//! let lr = learn.lr_find(&LrFindConfig::default())?;                 // then plot::plot_lr_find
//! learn.fit_one_cycle(5, 5e-3)?;
//! learn.save("dotprod")?;  learn.load("dotprod")?;
//! let top_movies: Vec<String> =                                      // the 1,000 most rated titles
//!     most_rated(&rating_movie, "title", "rating")?.into_iter().take(1000).map(|(title, ..)| title).collect();
//! let movie_bias = learn.bias(&top_movies, true)?;                   // by title (or raw id)
//! let movie_pca = pca(&learn.weight(&top_movies, true)?, 3)?;
//! learn.export(Path::new("lesson.safetensors"))?;                    // one file for inference
//! # let _ = (lr, movie_bias, movie_pca);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod data;
pub mod error;
pub mod evaluate;
pub mod fsutil;
pub mod infer;
pub mod interpret;
mod kernels;
pub mod learner;
pub mod metrics;
pub mod model;
pub mod pca;
pub mod plot;
mod progress;
pub mod recipe;
pub mod threads;

pub use data::databunch::{CollabConfig, CollabDataBunch, Encoded};
pub use data::download::{data_dir, untar_data, untar_data_in, Check, DatasetSpec};
pub use data::movielens::MovieLens100k;
pub use data::read::{read_delimited, Encoding, Kind, ReadOptions};
pub use data::split::{random_split, Split, SplitMethod};
pub use data::table::{Column, Table, Value};
pub use data::vocab::Vocab;
pub use error::{Error, Result};
pub use infer::{load_learner, Recommender, Unmatched};
pub use learner::lr_find::{LrFind, LrFindConfig, LrSuggestions};
pub use learner::recorder::{Metrics, Recorder};
pub use learner::schedule::OneCycle;
pub use learner::{collab_learner, CollabLearnerConfig, DeviceChoice, Learner, ModelConfig, TrainMode};
pub use model::{CollabModel, DotBiasConfig, EmbeddingDotBias, EmbeddingNN, EmbeddingNNConfig, NnLayout};
pub use pca::{pca, Pca};
