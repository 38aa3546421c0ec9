//! Models: they know only tensors, never data loaders or optimizers.
pub mod dot_bias;
pub mod embedding_nn;
pub mod init;

use std::fmt;

use tch::{Kind, Tensor};

pub use dot_bias::{DotBiasConfig, EmbeddingDotBias};
pub use embedding_nn::{EmbeddingNN, EmbeddingNNConfig, LayerSpec, NnLayout};

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

    /// Predicted ratings for the row pairs `(users[r], items[r])`, in evaluation mode: for
    /// EmbeddingDotBias on the CPU in Rust loops, else through [`CollabModel::forward_t`] in chunks
    /// on the model's device.
    pub fn predict_rows(&self, users: &[u32], items: &[u32]) -> Vec<f32> {
        assert_eq!(users.len(), items.len(), "predict_rows needs one item row per user row");
        if let Some(out) = match self {
            CollabModel::DotBias(m) => m.predict_rows_cpu(users, items),
            CollabModel::Nn(_) => None,
        } {
            return out;
        }
        let device = self.weight_table(false).device();
        let rows = |r: &[u32]| Tensor::from_slice(&r.iter().map(|&x| x as i64).collect::<Vec<_>>()).to(device);
        let mut out = Vec::with_capacity(users.len());
        tch::no_grad(|| {
            for (u, i) in users.chunks(4096).zip(items.chunks(4096)) {
                let p = self.forward_t(&rows(u), &rows(i), false).to_kind(Kind::Float).to(tch::Device::Cpu);
                out.extend(Vec::<f32>::try_from(&p).expect("float predictions"));
            }
        });
        out
    }

    /// Names of the parameters exempt from weight decay.
    pub fn no_decay(&self) -> &[String] {
        match self {
            CollabModel::DotBias(_) => &[],
            CollabModel::Nn(m) => m.no_decay(),
        }
    }

    /// The name the tensor `name` (with any prefix) had in files written before EmbeddingNN's v2
    /// layers took fastai's nested names; `None` where it is the same.
    pub fn former_name(&self, name: &str) -> Option<String> {
        match self {
            CollabModel::DotBias(_) => None,
            CollabModel::Nn(m) => m.former_name(name),
        }
    }

    /// The name under which a file holds the tensor `name` (`has` says which names it holds):
    /// `name`, or its [former name](CollabModel::former_name) in a file written before, so such
    /// files still load.
    pub fn name_in_file(&self, name: &str, has: impl Fn(&str) -> bool) -> String {
        match self.former_name(name) {
            Some(former) if !has(name) && has(&former) => former,
            _ => name.to_string(),
        }
    }

    /// The stream the model's dropout masks are drawn from (`None` for a model without dropout
    /// layers of its kind).
    pub fn dropout_rng(&self) -> Option<&init::DropoutRng> {
        match self {
            CollabModel::DotBias(_) => None,
            CollabModel::Nn(m) => Some(m.dropout_rng()),
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
