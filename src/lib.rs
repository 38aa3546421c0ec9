//! fastcollab: fastai's collaborative filtering (course-v3 lesson 5) in Rust on libtorch.
//!
//! The pieces compose like fastai's: read ratings into a [`Table`], build a
//! [`CollabDataBunch`], get a [`Learner`] from [`collab_learner`], then `lr_find`,
//! `fit_one_cycle`, `save`/`load`, and interpret biases and factors.
//!
//! ```no_run
//! use fastcollab::{collab_learner, untar_data, CollabConfig, CollabDataBunch, CollabLearnerConfig,
//!                  DatasetSpec, DotBiasConfig, ModelConfig, MovieLens100k};
//! # fn main() -> fastcollab::Result<()> {
//! let path = untar_data(&DatasetSpec::ml_100k())?;
//! let rating_movie = MovieLens100k::load(&path)?.rating_movie()?;
//! let data = CollabDataBunch::from_df(&rating_movie, &CollabConfig { item_name: Some("title".into()), ..Default::default() })?;
//! let model = ModelConfig::DotBias(DotBiasConfig { n_factors: 40, y_range: Some((0.0, 5.5)) });
//! let mut learn = collab_learner(data, &CollabLearnerConfig { model, wd: 0.1, ..Default::default() })?;
//! learn.fit_one_cycle(5, 5e-3)?;
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
pub use infer::{load_learner, Recommender};
pub use learner::lr_find::{LrFind, LrFindConfig, LrSuggestions};
pub use learner::recorder::{Metrics, Recorder};
pub use learner::schedule::OneCycle;
pub use learner::{collab_learner, CollabLearnerConfig, DeviceChoice, Learner, ModelConfig, TrainMode};
pub use model::{CollabModel, DotBiasConfig, EmbeddingDotBias, EmbeddingNN, EmbeddingNNConfig, NnLayout};
pub use pca::{pca, Pca};
