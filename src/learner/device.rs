//! Where a model trains: `auto`, `cpu`, `cuda` or `cuda:N`.
use std::fmt;
use std::str::FromStr;

use tch::Device;

use super::ModelConfig;
use crate::error::{Error, Result};

/// The device a learner places its model on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// EmbeddingDotBias on the CPU, where the exact sparse path trains it (measured: the lesson's
    /// fit in a fraction of a second, against thousands of tiny kernel launches per epoch for
    /// autograd on any device); EmbeddingNN on the first GPU when there is one, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device `N` (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl DeviceChoice {
    /// The device for `model`; an error when a GPU is asked for and none is visible.
    pub fn resolve(self, model: &ModelConfig) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto => Ok(match model {
                ModelConfig::DotBias(_) => Device::Cpu,
                ModelConfig::Nn(_) => Device::cuda_if_available(),
            }),
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
