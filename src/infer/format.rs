//! The exported model file: safetensors with fastai's state-dict names, and metadata (format
//! version, model, vocabularies, provenance, training, metrics) as JSON strings under fixed keys.
use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::data::provenance::Provenance;
use crate::error::{Error, Result};
use crate::learner::FitRecord;
use crate::model::NnLayout;

/// The value of the `format` key.
pub const FORMAT: &str = "fastcollab";
/// The newest format version this build reads and the one it writes. Version 2 stores
/// `seen.items` as u32 (version 1: i64, twice the bytes); both are read.
pub const FORMAT_VERSION: u32 = 2;

/// The model's kind and shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum ModelSpec {
    /// fastai's `EmbeddingDotBias`.
    EmbeddingDotBias {
        /// Width of the factor tables.
        n_factors: usize,
        /// Output range of the sigmoid.
        y_range: Option<(f64, f64)>,
    },
    /// fastai's `EmbeddingNN`.
    #[serde(rename = "EmbeddingNN")]
    EmbeddingNn {
        /// Embedding widths (user, item).
        emb_szs: (usize, usize),
        /// Hidden layer widths.
        layers: Vec<usize>,
        /// Dropout probabilities of the hidden blocks.
        ps: Vec<f64>,
        /// Dropout on the concatenated embeddings.
        emb_drop: f64,
        /// BatchNorm in the hidden blocks.
        use_bn: bool,
        /// fastai v1's or v2's block layout.
        layout: NnLayout,
        /// Output range of the sigmoid.
        y_range: Option<(f64, f64)>,
    },
}

/// The vocabularies, names in row order (`#na#` first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vocabs {
    /// User names.
    pub user: Vec<String>,
    /// Item names.
    pub item: Vec<String>,
    /// Users are whole-number ids.
    pub user_numeric: bool,
    /// Items are whole-number ids.
    pub item_numeric: bool,
}

/// How the model was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Training {
    /// Decoupled weight decay (also used by fold-in).
    pub wd: f64,
    /// Batch size.
    pub bs: usize,
    /// Adam's β2.
    pub beta2: f64,
    /// Adam's ε.
    pub eps: f64,
    /// The training path.
    pub mode: String,
    /// The fits, oldest first.
    pub fits: Vec<FitRecord>,
}

/// What the last fit measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Smoothed training loss after the last epoch.
    pub train_loss: Option<f64>,
    /// Validation MSE after the last epoch.
    pub valid_loss: Option<f64>,
    /// Training ratings.
    pub n_train: usize,
    /// Validation ratings.
    pub n_valid: usize,
}

/// Everything an exported file says besides its tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportMeta {
    /// Always `fastcollab`.
    pub format: String,
    /// The format version ([`FORMAT_VERSION`] when written by this build).
    pub format_version: u32,
    /// The model's kind and shape.
    pub model: ModelSpec,
    /// The user, item and rating column names of the training data.
    pub names: [String; 3],
    /// The vocabularies.
    pub vocab: Vocabs,
    /// Where the data came from and how it was split.
    pub provenance: Provenance,
    /// How the model was trained.
    pub training: Training,
    /// What the last fit measured.
    pub metrics: Metrics,
    /// Display titles of the items in row order (`""` where an item has none), when the items are
    /// ids and titles were given at training (`train --items FILE`). Absent otherwise, and in files
    /// written before it existed; readers that do not know it ignore it (no new format version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_titles: Option<Vec<String>>,
}

/// A tensor to write: name, element type, shape, little-endian bytes.
pub(crate) struct Blob {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Blob {
    /// An f32 tensor.
    pub fn f32(name: &str, shape: Vec<usize>, values: &[f32]) -> Blob {
        Blob {
            name: name.into(),
            dtype: Dtype::F32,
            shape,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// A u32 tensor.
    pub fn u32(name: &str, shape: Vec<usize>, values: &[u32]) -> Blob {
        Blob {
            name: name.into(),
            dtype: Dtype::U32,
            shape,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// An i64 tensor.
    pub fn i64(name: &str, shape: Vec<usize>, values: &[i64]) -> Blob {
        Blob {
            name: name.into(),
            dtype: Dtype::I64,
            shape,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

impl ExportMeta {
    fn to_header(&self) -> serde_json::Result<HashMap<String, String>> {
        let json = serde_json::to_value(self)?;
        let serde_json::Value::Object(map) = json else { unreachable!("a struct serialises to an object") };
        Ok(map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect())
    }

    fn from_header(header: &HashMap<String, String>, bad: &dyn Fn(String) -> Error) -> Result<ExportMeta> {
        match header.get("format") {
            Some(f) if f == FORMAT => {}
            _ => return Err(bad("is a safetensors file but not a model exported by fastcollab".into())),
        }
        let version: u32 = header
            .get("format_version")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("has no readable format_version".into()))?;
        if version > FORMAT_VERSION {
            return Err(bad(format!(
                "was written in format version {version} by a newer fastcollab; this one reads up to version \
                 {FORMAT_VERSION}: upgrade fastcollab"
            )));
        }
        let mut map = serde_json::Map::new();
        for (k, v) in header {
            let value = match k.as_str() {
                "format" => serde_json::Value::String(v.clone()),
                _ => serde_json::from_str(v).map_err(|e| bad(format!("metadata {k:?} is not valid JSON: {e}")))?,
            };
            map.insert(k.clone(), value);
        }
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| bad(format!("metadata does not fit: {e}")))
    }
}

/// Writes `blobs` and `meta` to `path` atomically (beside it, fsync, rename).
pub(crate) fn write(path: &Path, meta: &ExportMeta, blobs: &[Blob]) -> Result<()> {
    let failed = |message: String| Error::Model { path: path.to_path_buf(), message };
    let views = blobs
        .iter()
        .map(|b| {
            let view = TensorView::new(b.dtype, b.shape.clone(), &b.bytes)
                .map_err(|e| failed(format!("tensor {}: {e}", b.name)))?;
            Ok((b.name.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let header = meta.to_header().map_err(|e| failed(format!("metadata: {e}")))?;
    let bytes = safetensors::tensor::serialize(views, Some(header)).map_err(|e| failed(format!("safetensors: {e}")))?;
    let bytes = with_sorted_metadata(bytes).map_err(|e| failed(format!("safetensors header: {e}")))?;
    crate::fsutil::write_bytes_atomically(path, &bytes)
}

/// `bytes` (a safetensors file) with its metadata's keys in sorted order. safetensors writes the
/// metadata map in hash order, which changes from one process to the next; sorted, the same model
/// exports to the same bytes. The tensors' entries and data are unchanged (their offsets count
/// from the end of the header, whose length is recomputed and padded to eight bytes as before).
fn with_sorted_metadata(bytes: Vec<u8>) -> serde_json::Result<Vec<u8>> {
    const LEN: usize = std::mem::size_of::<u64>();
    let n = u64::from_le_bytes(bytes[..LEN].try_into().expect("eight bytes")) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[LEN..LEN + n])?;
    if let Some(serde_json::Value::Object(meta)) = header.get_mut("__metadata__") {
        let sorted: std::collections::BTreeMap<String, serde_json::Value> = std::mem::take(meta).into_iter().collect();
        meta.extend(sorted);
    }
    let mut text = serde_json::to_vec(&header)?;
    text.resize(text.len().next_multiple_of(LEN), b' ');
    let mut out = Vec::with_capacity(LEN + text.len() + bytes.len() - LEN - n);
    out.extend((text.len() as u64).to_le_bytes());
    out.extend(text);
    out.extend(&bytes[LEN + n..]);
    Ok(out)
}

/// A read export: its metadata and its tensors by name (element type, shape, bytes).
pub(crate) struct Read {
    pub meta: ExportMeta,
    pub tensors: HashMap<String, (Dtype, Vec<usize>, Vec<u8>)>,
}

/// Reads and checks an exported file; every failure is an error naming the file.
pub(crate) fn read(path: &Path) -> Result<Read> {
    let bad = |message: String| Error::Model { path: path.to_path_buf(), message };
    crate::data::read::check_regular_file(path)?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    // `Learner::save` writes libtorch's archive, a zip file: the likeliest wrong file to be given.
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(bad("is a training checkpoint (`Learner::save`, `train`'s models/NAME.pth), not an exported \
                        model: export one with `fastcollab train --export FILE` or `Learner::export`"
            .into()));
    }
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("is not a safetensors file, or is truncated or corrupt ({e})")))?;
    let meta = ExportMeta::from_header(header.metadata().as_ref().unwrap_or(&HashMap::new()), &bad)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("is truncated or corrupt ({e})")))?;
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, (view.dtype(), view.shape().to_vec(), view.data().to_vec())))
        .collect();
    Ok(Read { meta, tensors })
}

impl Read {
    /// The f32 tensor `name` of exactly `shape`, as values.
    pub fn f32(&self, name: &str, shape: &[usize], path: &Path) -> Result<Vec<f32>> {
        let bad = |message: String| Error::Model { path: path.to_path_buf(), message };
        let (dtype, s, bytes) = self.tensors.get(name).ok_or_else(|| bad(format!("has no tensor {name:?}")))?;
        if *dtype != Dtype::F32 || s != shape {
            return Err(bad(format!("tensor {name} is {dtype:?} {s:?}, expected F32 {shape:?}")));
        }
        Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// The i64 tensor `name` of exactly `shape`, as values.
    pub fn i64(&self, name: &str, shape: &[usize], path: &Path) -> Result<Vec<i64>> {
        let bad = |message: String| Error::Model { path: path.to_path_buf(), message };
        let (dtype, s, bytes) = self.tensors.get(name).ok_or_else(|| bad(format!("has no tensor {name:?}")))?;
        if *dtype != Dtype::I64 || s != shape {
            return Err(bad(format!("tensor {name} is {dtype:?} {s:?}, expected I64 {shape:?}")));
        }
        Ok(bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
    }

    /// The row numbers in tensor `name` of exactly `shape`: u32 (format version 2), or i64 (version
    /// 1), each below `rows`.
    pub fn rows(&self, name: &str, shape: &[usize], rows: usize, path: &Path) -> Result<Vec<u32>> {
        let bad = |message: String| Error::Model { path: path.to_path_buf(), message };
        let values: Vec<u32> = match self.tensors.get(name) {
            Some((Dtype::U32, s, bytes)) if s == shape => {
                bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()
            }
            Some((Dtype::I64, s, _)) if s == shape => {
                let wide = self.i64(name, shape, path)?;
                wide.iter().map(|&r| u32::try_from(r).unwrap_or(u32::MAX)).collect()
            }
            Some((dtype, s, _)) => {
                return Err(bad(format!("tensor {name} is {dtype:?} {s:?}, expected U32 {shape:?}")))
            }
            None => return Err(bad(format!("has no tensor {name:?}"))),
        };
        match values.iter().find(|&&r| r as usize >= rows) {
            Some(r) => Err(bad(format!("tensor {name} holds row {r}, beyond the {rows} rows"))),
            None => Ok(values),
        }
    }

    /// The shape of tensor `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|t| t.1.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{generate, SyntheticConfig};
    use crate::learner::{collab_learner, CollabLearnerConfig, DeviceChoice};

    /// A file of format version 1 (the training items each user rated as i64) reads as the same
    /// model as this build's export of it (u32): the same seen items, the same recommendations.
    #[test]
    fn version_1_files_are_still_read() {
        let cfg = SyntheticConfig { n_users: 50, n_items: 40, n_ratings: 1500, ..SyntheticConfig::movielens_25m(1500) };
        let data = generate(&cfg, 0.1, 64).unwrap();
        let learn =
            collab_learner(data, &CollabLearnerConfig { device: DeviceChoice::Cpu, ..Default::default() }).unwrap();
        let dir = std::env::temp_dir().join(format!("fastcollab-format-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (v2, v1) = (dir.join("v2.safetensors"), dir.join("v1.safetensors"));
        learn.export(&v2).unwrap();
        let read = read(&v2).unwrap();
        assert_eq!((read.meta.format_version, read.tensors["seen.items"].0), (2, Dtype::U32));
        let meta = ExportMeta { format_version: 1, ..read.meta.clone() };
        let blobs: Vec<Blob> = read
            .tensors
            .iter()
            .map(|(name, (dtype, shape, bytes))| match name.as_str() {
                "seen.items" => {
                    let rows = read.rows(name, shape, usize::MAX, &v2).unwrap();
                    Blob::i64(name, shape.clone(), &rows.iter().map(|&r| r as i64).collect::<Vec<_>>())
                }
                _ => Blob { name: name.clone(), dtype: *dtype, shape: shape.clone(), bytes: bytes.clone() },
            })
            .collect();
        write(&v1, &meta, &blobs).unwrap();
        let (old, new) = (crate::load_learner(&v1).unwrap(), crate::load_learner(&v2).unwrap());
        assert_eq!(old.meta.format_version, 1);
        assert!(std::fs::metadata(&v1).unwrap().len() > std::fs::metadata(&v2).unwrap().len());
        assert_eq!((&old.seen().indptr, &old.seen().items), (&new.seen().indptr, &new.seen().items));
        let users: Vec<u32> = (1..old.users().len() as u32).collect();
        assert_eq!(old.recommend_rows(&users, 5, false, 0.0), new.recommend_rows(&users, 5, false, 0.0));
    }
}
