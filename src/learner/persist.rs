//! `save`/`load`: model weights and optimizer state under `path/models/NAME.pth`, written
//! atomically, and loaded only after every tensor of the file has been checked.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

use super::optim::AdamState;
use super::Learner;
use crate::error::{Error, Result};

const OPT_AVG: &str = "opt.exp_avg.";
const OPT_SQ: &str = "opt.exp_avg_sq.";
const OPT_STEP: &str = "opt.step";
/// SHA-256 of the user and item vocabularies the model was trained with.
const VOCAB: &str = "meta.vocab_sha256";

impl Learner {
    /// Saves every variable (named like fastai's state dict), the Adam state and a fingerprint of
    /// the vocabularies to `path/models/NAME.pth` (libtorch's archive format). The file is written
    /// beside the target and renamed over it only when complete, so a failed save never destroys
    /// the previous file.
    pub fn save(&self, name: &str) -> Result<PathBuf> {
        let dir = self.model_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(format!("{name}.pth"));
        let mut named: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        for (j, p) in self.params.iter().enumerate() {
            named.push((format!("{OPT_AVG}{}", p.name), self.opt.exp_avg[j].shallow_clone()));
            named.push((format!("{OPT_SQ}{}", p.name), self.opt.exp_avg_sq[j].shallow_clone()));
        }
        named.push((OPT_STEP.into(), Tensor::from(self.opt.step as i64)));
        named.push((VOCAB.into(), Tensor::from_slice(&self.data.vocab_fingerprint())));
        crate::fsutil::write_atomically(&path, |tmp| Ok(Tensor::save_multi(&named, tmp)?))?;
        Ok(path)
    }

    /// Loads `path/models/NAME.pth` saved by [`Learner::save`].
    pub fn load(&mut self, name: &str) -> Result<()> {
        let path = self.model_dir().join(format!("{name}.pth"));
        self.load_file(&path)
    }

    /// [`Learner::load`] from an explicit file. Every variable must be present with its shape and
    /// element type, the vocabularies must be the learner's (files that record them), and the
    /// optimizer state must be complete or absent (then it is reset). Everything is checked before
    /// anything is copied: a refused file leaves the learner as it was.
    pub fn load_file(&mut self, path: &Path) -> Result<()> {
        let bad = |message: String| Error::Model { path: path.to_path_buf(), message };
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(bad("is not a regular file".into()));
        }
        let saved: HashMap<String, Tensor> = Tensor::load_multi_with_device(path, self.device())
            .map_err(|e| {
                let first = e.to_string().lines().next().unwrap_or_default().to_string();
                bad(format!("cannot be read as a model saved by fastcollab (libtorch: {first})"))
            })?
            .into_iter()
            .collect();
        if let Some(fingerprint) = saved.get(VOCAB) {
            let ok = fingerprint.kind() == Kind::Uint8
                && Vec::<u8>::try_from(fingerprint).is_ok_and(|f| f == self.data.vocab_fingerprint());
            if !ok {
                return Err(bad("was trained on other data: its user or item vocabulary differs from this \
                                learner's (another dataset, split, seed or item column?)"
                    .into()));
            }
        }
        let key = |name: &str| self.model.name_in_file(name, |n| saved.contains_key(n));
        let check = |name: &str, like: &Tensor| -> Result<()> {
            let t =
                saved.get(&key(name)).ok_or_else(|| bad(format!("has no {name:?}; is it a model of another kind?")))?;
            if t.size() != like.size() {
                return Err(bad(format!(
                    "{name} has shape {:?}, this learner needs {:?} (other data or n_factors?)",
                    t.size(),
                    like.size()
                )));
            }
            if t.kind() != like.kind() {
                return Err(bad(format!("{name} holds {:?}, this learner needs {:?}", t.kind(), like.kind())));
            }
            Ok(())
        };
        let live = self.vs.variables();
        for (name, var) in &live {
            check(name, var)?;
        }
        let opt_keys = saved.keys().filter(|k| k.starts_with("opt.")).count();
        let opt = if opt_keys == 0 {
            None
        } else {
            for (p, m) in self.params.iter().zip(&self.opt.exp_avg) {
                check(&format!("{OPT_AVG}{}", p.name), m)?;
                check(&format!("{OPT_SQ}{}", p.name), m)?;
            }
            let step = saved.get(OPT_STEP).ok_or_else(|| bad(format!("has optimizer state but no {OPT_STEP:?}")))?;
            if step.numel() != 1 || step.kind() != Kind::Int64 || step.int64_value(&[]) < 0 {
                return Err(bad(format!(
                    "{OPT_STEP} must be one non-negative int64, got {:?} {:?}",
                    step.kind(),
                    step.size()
                )));
            }
            Some(step.int64_value(&[]) as u64)
        };
        tch::no_grad(|| {
            for (name, var) in &live {
                var.shallow_clone().copy_(&saved[&key(name)]);
            }
        });
        self.opt = AdamState::new(&self.params);
        if let Some(step) = opt {
            tch::no_grad(|| {
                for (j, p) in self.params.iter().enumerate() {
                    self.opt.exp_avg[j].copy_(&saved[&key(&format!("{OPT_AVG}{}", p.name))]);
                    self.opt.exp_avg_sq[j].copy_(&saved[&key(&format!("{OPT_SQ}{}", p.name))]);
                }
            });
            self.opt.step = step;
        }
        Ok(())
    }
}
