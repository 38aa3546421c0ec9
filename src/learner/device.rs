//! Where a model trains: `auto`, `cpu`, `cuda` or `cuda:N`.
use std::fmt;
use std::str::FromStr;

use tch::Device;

use crate::error::{Error, Result};

/// The device a learner places its model on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The CPU for both models, where their exact engines train them: on an H200 host the
    /// lesson's fit took 0.14 s on the CPU against 11.5 s through autograd on the GPU, and
    /// EmbeddingNN's 2.8 s against 23.4 s (batches of 64 are too small for a GPU to pay off).
    /// `cuda` still trains on a GPU through autograd, for batches large enough to gain from one.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device `N` (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl DeviceChoice {
    /// The device to train on; an error when a GPU is asked for and none is visible.
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu | DeviceChoice::Auto => Ok(Device::Cpu),
            DeviceChoice::Cuda(n) => {
                let visible = if tch::Cuda::is_available() { tch::Cuda::device_count() as usize } else { 0 };
                if n < visible {
                    Ok(Device::Cuda(n))
                } else {
                    Err(Error::Unsupported(format!(
                        "device cuda:{n} asked for, but {visible} CUDA device(s) are visible; use --device cpu or auto"
                    )))
                }
            }
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| Error::InvalidConfig(format!("unknown device {s:?}; use auto, cpu, cuda or cuda:N"))),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => write!(f, "auto"),
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}
