//! `Learner::export`: one self-contained file for inference (no data needed to use it).
use std::path::Path;

use tch::{Device, Kind};

use super::format::{self, Blob, ExportMeta, Metrics, ModelSpec, Training, Vocabs, FORMAT, FORMAT_VERSION};
use super::rank::Seen;
use crate::error::Result;
use crate::learner::{Learner, ModelConfig};

impl Learner {
    /// Writes everything inference needs to `path`, as safetensors: the model's tensors under
    /// fastai's state-dict names (no optimizer state), the items each user rated in training with
    /// the ratings (`seen.indptr`, `seen.items`, `seen.ratings`: what recommendations exclude and
    /// fold-in starts from) and each item's training count (`item.count`); in the metadata the
    /// format version, the model's kind and shape, the vocabularies, the data's provenance, the
    /// training settings and the final metrics. The file is written beside `path`, fsynced and
    /// renamed over it, so a failed export never destroys an earlier file.
    pub fn export(&self, path: &Path) -> Result<()> {
        let mut blobs = Vec::new();
        let mut vars: Vec<(String, tch::Tensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, t) in vars {
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            let cpu = t.to_device(Device::Cpu);
            if cpu.kind() == Kind::Int64 {
                blobs.push(Blob::i64(&name, shape, &Vec::<i64>::try_from(cpu.view([-1]))?));
            } else {
                let values = Vec::<f32>::try_from(cpu.to_kind(Kind::Float).contiguous().view([-1]))?;
                blobs.push(Blob::f32(&name, shape, &values));
            }
        }
        let seen = Seen::from_encoded(&self.data.train, self.data.n_users());
        let indptr: Vec<i64> = seen.indptr.iter().map(|&x| x as i64).collect();
        blobs.push(Blob::i64("seen.indptr", vec![indptr.len()], &indptr));
        blobs.push(Blob::u32("seen.items", vec![seen.items.len()], &seen.items));
        blobs.push(Blob::f32("seen.ratings", vec![seen.ratings.len()], &seen.ratings));
        let mut count = vec![0i64; self.data.n_items()];
        for &i in &self.data.train.items {
            count[i as usize] += 1;
        }
        blobs.push(Blob::i64("item.count", vec![count.len()], &count));
        format::write(path, &self.export_meta(), &blobs)
    }

    /// The metadata [`Learner::export`] writes.
    fn export_meta(&self) -> ExportMeta {
        let cfg = self.config();
        let model = match (&cfg.model, &self.model) {
            (ModelConfig::DotBias(c), _) => ModelSpec::EmbeddingDotBias { n_factors: c.n_factors, y_range: c.y_range },
            (ModelConfig::Nn(c), m) => ModelSpec::EmbeddingNn {
                emb_szs: (m.weight_table(false).size()[1] as usize, m.weight_table(true).size()[1] as usize),
                layers: c.layers.clone(),
                ps: c.ps.clone(),
                emb_drop: c.emb_drop,
                use_bn: c.use_bn,
                layout: c.layout,
                y_range: c.y_range,
            },
        };
        let last = self.recorder.epochs.last();
        let d = &self.data;
        ExportMeta {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            model,
            names: d.names.clone(),
            vocab: Vocabs {
                user: d.user_vocab.names().to_vec(),
                item: d.item_vocab.names().to_vec(),
                user_numeric: d.user_vocab.is_numeric(),
                item_numeric: d.item_vocab.is_numeric(),
            },
            provenance: d.provenance.clone(),
            training: Training {
                wd: cfg.wd,
                bs: d.bs,
                beta2: cfg.beta2,
                eps: cfg.eps,
                mode: self.mode().name().into(),
                fits: self.fits().to_vec(),
            },
            metrics: Metrics {
                train_loss: last.map(|e| e.train_loss),
                valid_loss: last.and_then(|e| e.valid_loss),
                n_train: d.train.len(),
                n_valid: d.valid.len(),
            },
            item_titles: d.item_titles.clone(),
        }
    }
}
