//! Models: they know only tensors, never data loaders or optimizers.
pub mod dot_bias;
pub mod embedding_nn;
pub mod init;

use std::fmt;

use tch::Tensor;

pub use dot_bias::{DotBiasConfig, EmbeddingDotBias};
pub use embedding_nn::{EmbeddingNN, EmbeddingNNConfig, NnLayout};

/// The two collaborative-filtering models of fastai.
#[derive(Debug)]
pub enum CollabModel {
    /// The lesson's dot-product model.
    DotBias(EmbeddingDotBias),
    /// The multi-layer model (`use_nn`).
    Nn(EmbeddingNN),
}

impl CollabModel {
    /// Predictions `[bs]` for int64 `users`, `items` `[bs]`; `train` selects training behaviour.
    pub fn forward_t(&self, users: &Tensor, items: &Tensor, train: bool) -> Tensor {
        match self {
            CollabModel::DotBias(m) => m.forward(users, items),
            CollabModel::Nn(m) => m.forward_t(users, items, train),
        }
    }

    /// Names of the parameters exempt from weight decay.
    pub fn no_decay(&self) -> &[String] {
        match self {
            CollabModel::DotBias(_) => &[],
            CollabModel::Nn(m) => m.no_decay(),
        }
    }

    /// `EmbeddingDotBias` or `EmbeddingNN`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            CollabModel::DotBias(_) => "EmbeddingDotBias",
            CollabModel::Nn(_) => "EmbeddingNN",
        }
    }

    /// The item (`is_item`) or user embedding table.
    pub fn weight_table(&self, is_item: bool) -> &Tensor {
        match (self, is_item) {
            (CollabModel::DotBias(m), true) => &m.i_weight,
            (CollabModel::DotBias(m), false) => &m.u_weight,
            (CollabModel::Nn(m), true) => &m.i_embed,
            (CollabModel::Nn(m), false) => &m.u_embed,
        }
    }
}

impl fmt::Display for CollabModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CollabModel::DotBias(m) => m.fmt(f),
            CollabModel::Nn(m) => m.fmt(f),
        }
    }
}
