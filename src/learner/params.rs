//! The trainable parameters, listed once by name (sorted), each with its weight-decay flag.
use tch::{nn, Device, Kind, Tensor};

use crate::error::{Error, Result};

/// One trainable tensor, named like fastai's state dict (`u_weight.weight`, `layers.0.weight`…).
#[derive(Debug)]
pub struct Param {
    /// The state-dict name.
    pub name: String,
    /// The variable (shares storage with the model).
    pub tensor: Tensor,
    /// Whether decoupled weight decay applies to it.
    pub decay: bool,
}

/// Every trainable variable of a model, in name order: the optimizer's parameter list.
#[derive(Debug)]
pub struct Params(Vec<Param>);

impl Params {
    /// The trainable variables of `vs`; those named in `no_decay` are exempt from weight decay.
    pub fn new(vs: &nn::VarStore, no_decay: &[String]) -> Params {
        let mut list: Vec<Param> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(name, tensor)| Param { decay: !no_decay.contains(&name), name, tensor })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        Params(list)
    }

    /// The parameters in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Param> {
        self.0.iter()
    }

    /// Number of parameter tensors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for a model without parameters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The position of `name` in the list.
    pub fn index(&self, name: &str) -> Result<usize> {
        self.0
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| Error::InvalidConfig(format!("the model has no parameter {name:?}")))
    }

    /// The parameter at position `i`.
    pub fn get(&self, i: usize) -> &Param {
        &self.0[i]
    }

    /// The tensor at position `i`.
    pub fn tensor(&self, i: usize) -> &Tensor {
        &self.0[i].tensor
    }

    /// The device of the parameters (the first one's).
    pub fn device(&self) -> Device {
        self.0.first().map_or(Device::Cpu, |p| p.tensor.device())
    }

    /// The element type of the parameters (the first one's).
    pub fn kind(&self) -> Kind {
        self.0.first().map_or(Kind::Float, |p| p.tensor.kind())
    }

    /// Clears every gradient.
    pub fn zero_grad(&self) {
        for p in &self.0 {
            p.tensor.shallow_clone().zero_grad();
        }
    }
}
