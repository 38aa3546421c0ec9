//! `save`/`load`: model weights and optimizer state under `path/models/NAME.pth`, written atomically.
use std::fs;
use std::path::{Path, PathBuf};

use tch::Tensor;

use super::Learner;
use crate::error::{Error, Result};

const OPT_AVG: &str = "opt.exp_avg.";
const OPT_SQ: &str = "opt.exp_avg_sq.";
const OPT_STEP: &str = "opt.step";

impl Learner {
    /// Saves every variable (named like fastai's state dict) and the Adam state to
    /// `path/models/NAME.pth` (libtorch's archive format). The file is written beside the target
    /// and renamed over it only when complete, so a failed save never destroys the previous file.
    pub fn save(&self, name: &str) -> Result<PathBuf> {
        let dir = self.model_dir();
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(format!("{name}.pth"));
        let tmp = dir.join(format!(".{name}.pth.partial-{}", std::process::id()));
        let mut named: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let names = self.param_names();
        for (j, n) in names.iter().enumerate() {
            named.push((format!("{OPT_AVG}{n}"), self.opt.exp_avg[j].shallow_clone()));
            named.push((format!("{OPT_SQ}{n}"), self.opt.exp_avg_sq[j].shallow_clone()));
        }
        named.push((OPT_STEP.into(), Tensor::from(self.opt.step as i64)));
        let result = Tensor::save_multi(&named, &tmp)
            .map_err(Error::from)
            .and_then(|()| fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| Error::io(&tmp, e)))
            .and_then(|()| fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e)));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| path)
    }

    /// Loads `path/models/NAME.pth` saved by [`Learner::save`]: every variable must be present with
    /// its shape; the optimizer state is restored when the file has it, else reset.
    pub fn load(&mut self, name: &str) -> Result<()> {
        let path = self.model_dir().join(format!("{name}.pth"));
        self.load_file(&path)
    }

    /// [`Learner::load`] from an explicit file.
    pub fn load_file(&mut self, path: &Path) -> Result<()> {
        if !path.is_file() {
            return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no saved model here")));
        }
        let device = self.device();
        let saved: std::collections::HashMap<String, Tensor> =
            Tensor::load_multi_with_device(path, device)?.into_iter().collect();
        let bad = |message: String| Error::Model { path: path.to_path_buf(), message };
        let live = self.vs.variables();
        for (name, var) in &live {
            let t = saved.get(name).ok_or_else(|| bad(format!("has no {name:?}; is it a model of another kind?")))?;
            if t.size() != var.size() {
                return Err(bad(format!(
                    "{name} has shape {:?}, this learner needs {:?} (other data or n_factors?)",
                    t.size(),
                    var.size()
                )));
            }
        }
        tch::no_grad(|| {
            for (name, var) in &live {
                var.shallow_clone().copy_(&saved[name]);
            }
        });
        let names = self.param_names();
        let opt_complete = names
            .iter()
            .all(|n| saved.contains_key(&format!("{OPT_AVG}{n}")) && saved.contains_key(&format!("{OPT_SQ}{n}")));
        self.opt = super::optim::AdamState::new(&self.params);
        self.memory = None;
        if opt_complete {
            tch::no_grad(|| {
                for (j, n) in names.iter().enumerate() {
                    self.opt.exp_avg[j].copy_(&saved[&format!("{OPT_AVG}{n}")]);
                    self.opt.exp_avg_sq[j].copy_(&saved[&format!("{OPT_SQ}{n}")]);
                }
            });
            self.opt.step = saved.get(OPT_STEP).map_or(0, |t| t.int64_value(&[]) as u64);
        }
        Ok(())
    }

    /// Names of the trainable parameters, in optimizer order.
    fn param_names(&self) -> Vec<String> {
        let vars = self.vs.variables();
        self.params
            .iter()
            .map(|p| {
                vars.iter().find(|(_, v)| v.data_ptr() == p.data_ptr()).map(|(n, _)| n.clone()).unwrap_or_default()
            })
            .collect()
    }
}
