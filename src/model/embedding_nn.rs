//! `EmbeddingNN` (`use_nn`): user and item embeddings concatenated and fed to an MLP (fastai's
//! `TabularModel` with no continuous inputs), in fastai v2's layout or v1's.
use std::fmt;

use tch::nn;
use tch::Tensor;

use super::init::{emb_sz_rule, embedding, linear, sigmoid_range, DropoutRng, InitRng};

/// Shape of an [`EmbeddingNN`].
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingNNConfig {
    /// Embedding widths (user, item); `None` applies fastai's [`emb_sz_rule`].
    pub emb_szs: Option<(usize, usize)>,
    /// Hidden layer widths.
    pub layers: Vec<usize>,
    /// Dropout before each hidden layer after the first (`ps[k-1]` before layer `k`); empty = none.
    pub ps: Vec<f64>,
    /// Dropout on the concatenated embeddings.
    pub emb_drop: f64,
    /// Predictions are squashed into this range by a sigmoid; `None` leaves them raw.
    pub y_range: Option<(f64, f64)>,
    /// Use BatchNorm (where depends on `layout`).
    pub use_bn: bool,
    /// Where BatchNorm and dropout sit.
    pub layout: NnLayout,
}

/// fastai's two arrangements of the hidden blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NnLayout {
    /// fastai v1: `[BatchNorm] [Dropout] Linear ReLU`, no BatchNorm before the first Linear; every
    /// parameter is weight-decayed.
    V1,
    /// fastai v2, the default (current fastai; better on two of three lesson splits tried):
    /// `Linear(no bias before BatchNorm) ReLU [BatchNorm] [Dropout]`, the last block a plain
    /// Linear; BatchNorm parameters and Linear biases are not weight-decayed.
    #[default]
    V2,
}

impl Default for EmbeddingNNConfig {
    fn default() -> Self {
        EmbeddingNNConfig {
            emb_szs: None,
            layers: vec![100, 50],
            ps: vec![],
            emb_drop: 0.0,
            y_range: Some((0.0, 5.5)),
            use_bn: true,
            layout: NnLayout::default(),
        }
    }
}

/// One layer after the embeddings, as [`EmbeddingNN::layer_specs`] describes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerSpec {
    /// `y = x·Wᵀ (+ b)`.
    Linear {
        /// Input features.
        n_in: usize,
        /// Output features (`W` has shape `[n_out, n_in]`).
        n_out: usize,
        /// Whether there is a bias `b`.
        bias: bool,
    },
    /// `max(x, 0)`.
    Relu,
    /// BatchNorm1d: batch statistics in training, running ones in evaluation.
    BatchNorm {
        /// Features.
        n: usize,
        /// Weight of a batch's statistics in the running ones.
        momentum: f64,
        /// Added to the variance inside the square root.
        eps: f64,
    },
    /// Dropout with this probability in training.
    Dropout(f64),
}

/// BatchNorm1d's running-statistics momentum and ε (PyTorch's defaults, as fastai uses them).
const BN_MOMENTUM: f64 = 0.1;
const BN_EPS: f64 = 1e-5;
/// fastai v2's initial BatchNorm bias (`_get_norm` fills it with 1e-3; v1's `nn.BatchNorm1d`
/// starts at 0). Both start with weight 1.
const BN_V2_BIAS: f64 = 1e-3;

enum Layer {
    BatchNorm(nn::BatchNorm, usize),
    Dropout(f64),
    Linear(nn::Linear, usize, usize, bool),
    Relu,
}

/// Embeddings → concat → dropout → hidden blocks (see [`NnLayout`]) → Linear → y_range.
pub struct EmbeddingNN {
    /// User embedding `[n_users, emb_u]`.
    pub u_embed: Tensor,
    /// Item embedding `[n_items, emb_i]`.
    pub i_embed: Tensor,
    emb_drop: f64,
    /// Each layer with its module path under `layers` (`N` for v1's flat Sequential, `B.N` for
    /// the N-th module of v2's LinBnDrop block B): fastai's state-dict names.
    layers: Vec<(String, Layer)>,
    y_range: Option<(f64, f64)>,
    no_decay: Vec<String>,
    dropout: DropoutRng,
}

impl fmt::Debug for EmbeddingNN {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl EmbeddingNN {
    /// Creates the model under `path`: embeddings `embeds.0`/`embeds.1`, then the layers under
    /// fastai's names (`layers.N` in v1's layout, `layers.B.N` in v2's), initialised from `rng`.
    pub fn new(path: &nn::Path, n_users: usize, n_items: usize, cfg: &EmbeddingNNConfig, rng: &mut InitRng) -> Self {
        let (eu, ei) = cfg.emb_szs.unwrap_or((emb_sz_rule(n_users), emb_sz_rule(n_items)));
        let embeds = path / "embeds";
        let u_embed = embedding(&embeds, "0", n_users, eu, rng);
        let i_embed = embedding(&embeds, "1", n_items, ei, rng);
        let sizes: Vec<usize> = [eu + ei].into_iter().chain(cfg.layers.iter().copied()).chain([1]).collect();
        let lp = path / "layers";
        let mut layers: Vec<(String, Layer)> = Vec::new();
        // Where the next module goes: v1's layers form one flat Sequential (`layers.N`), v2's a
        // Sequential of LinBnDrop blocks (`layers.B.N`), as fastai names them.
        let place = |layers: &Vec<(String, Layer)>, block: usize, start: usize| match cfg.layout {
            NnLayout::V1 => (&lp / layers.len(), layers.len().to_string()),
            NnLayout::V2 => (&lp / block / (layers.len() - start), format!("{block}.{}", layers.len() - start)),
        };
        // γ = 1 and β as the layout's fastai sets it (tch's default γ would be U(0, 1), drawn from
        // the generator the Linear layers are initialised from).
        let beta = match cfg.layout {
            NnLayout::V1 => 0.0,
            NnLayout::V2 => BN_V2_BIAS,
        };
        let bn = |path: nn::Path, n: usize| {
            let bn_cfg = nn::BatchNormConfig {
                momentum: BN_MOMENTUM,
                eps: BN_EPS,
                ws_init: nn::Init::Const(1.0),
                bs_init: nn::Init::Const(beta),
                ..Default::default()
            };
            Layer::BatchNorm(nn::batch_norm1d(path, n as i64, bn_cfg), n)
        };
        let n_blocks = sizes.len() - 1;
        for k in 0..n_blocks {
            let (n_in, n_out, last) = (sizes[k], sizes[k + 1], k + 1 == n_blocks);
            let start = layers.len();
            let at = |layers: &Vec<(String, Layer)>| place(layers, k, start);
            match cfg.layout {
                NnLayout::V1 => {
                    if cfg.use_bn && k != 0 {
                        let (path, name) = at(&layers);
                        layers.push((name, bn(path, n_in)));
                    }
                    let p = if k == 0 { 0.0 } else { cfg.ps.get(k - 1).copied().unwrap_or(0.0) };
                    if p != 0.0 {
                        layers.push((at(&layers).1, Layer::Dropout(p)));
                    }
                    let (path, name) = at(&layers);
                    layers.push((name, Layer::Linear(linear(path, n_in, n_out, true, rng), n_in, n_out, true)));
                    if !last {
                        layers.push((at(&layers).1, Layer::Relu));
                    }
                }
                NnLayout::V2 => {
                    let with_bn = cfg.use_bn && !last;
                    let (path, name) = at(&layers);
                    layers.push((name, Layer::Linear(linear(path, n_in, n_out, !with_bn, rng), n_in, n_out, !with_bn)));
                    if !last {
                        layers.push((at(&layers).1, Layer::Relu));
                    }
                    if with_bn {
                        let (path, name) = at(&layers);
                        layers.push((name, bn(path, n_out)));
                    }
                    let p = if last { 0.0 } else { cfg.ps.get(k).copied().unwrap_or(0.0) };
                    if p != 0.0 {
                        layers.push((at(&layers).1, Layer::Dropout(p)));
                    }
                }
            }
        }
        let no_decay = match cfg.layout {
            NnLayout::V1 => Vec::new(),
            NnLayout::V2 => layers
                .iter()
                .flat_map(|(name, l)| match l {
                    Layer::BatchNorm(..) => vec![format!("layers.{name}.weight"), format!("layers.{name}.bias")],
                    Layer::Linear(.., true) => vec![format!("layers.{name}.bias")],
                    _ => vec![],
                })
                .collect(),
        };
        let dropout = rng.dropout();
        EmbeddingNN { u_embed, i_embed, emb_drop: cfg.emb_drop, layers, y_range: cfg.y_range, no_decay, dropout }
    }

    /// Names of the parameters fastai v2 exempts from weight decay (BatchNorm weights and biases,
    /// Linear biases) with the V2 layout; none with V1, which decays everything (`bn_wd=True`).
    pub fn no_decay(&self) -> &[String] {
        &self.no_decay
    }

    /// The flat name (`layers.3.weight`) files written before v2's layers took fastai's nested
    /// names (`layers.1.0.weight`) gave the tensor `name` (with any prefix, such as an optimizer
    /// state's); `None` for v1's layers, whose names are unchanged, and for the embeddings.
    pub fn former_name(&self, name: &str) -> Option<String> {
        let (prefix, rest) = name.split_at(name.find("layers.")?);
        let rest = &rest["layers.".len()..];
        self.layers.iter().enumerate().find_map(|(k, (module, _))| {
            let what = rest.strip_prefix(module.as_str())?.strip_prefix('.')?;
            module.contains('.').then(|| format!("{prefix}layers.{k}.{what}"))
        })
    }

    /// The layers after the embeddings, in order, as plain descriptions (for engines that compute
    /// them without libtorch), and the embedding dropout and output range around them.
    pub fn layer_specs(&self) -> (f64, Vec<LayerSpec>, Option<(f64, f64)>) {
        let specs = self
            .layers
            .iter()
            .map(|(_, layer)| match *layer {
                Layer::BatchNorm(_, n) => LayerSpec::BatchNorm { n, momentum: BN_MOMENTUM, eps: BN_EPS },
                Layer::Dropout(p) => LayerSpec::Dropout(p),
                Layer::Linear(_, n_in, n_out, bias) => LayerSpec::Linear { n_in, n_out, bias },
                Layer::Relu => LayerSpec::Relu,
            })
            .collect();
        (self.emb_drop, specs, self.y_range)
    }

    /// The BatchNorm layers' running means and variances, in layer order (tensors sharing the
    /// model's storage).
    pub fn batch_norm_stats(&self) -> Vec<(Tensor, Tensor)> {
        self.layers
            .iter()
            .filter_map(|(_, layer)| match layer {
                Layer::BatchNorm(bn, _) => Some((bn.running_mean.shallow_clone(), bn.running_var.shallow_clone())),
                _ => None,
            })
            .collect()
    }

    /// Predicted ratings for (`users`, `items`), both int64 `[bs]`; output `[bs]`.
    /// `train` switches dropout and BatchNorm's batch statistics on.
    pub fn forward_t(&self, users: &Tensor, items: &Tensor, train: bool) -> Tensor {
        let u = Tensor::embedding(&self.u_embed, users, -1, false, false);
        let i = Tensor::embedding(&self.i_embed, items, -1, false, false);
        self.forward_embedded(&u, &i, train)
    }

    /// The model after the embedding look-ups, from the user and item embedding rows `u` `[bs, eu]`
    /// and `i` `[bs, ei]`; output `[bs]`.
    pub fn forward_embedded(&self, u: &Tensor, i: &Tensor, train: bool) -> Tensor {
        self.forward_joined(&Tensor::cat(&[u, i], 1), train)
    }

    /// The model from the user and item embedding rows side by side, `[bs, eu + ei]` (what
    /// [`EmbeddingNN::forward_embedded`] concatenates); output `[bs]`.
    pub fn forward_joined(&self, x: &Tensor, train: bool) -> Tensor {
        let params: Vec<Tensor> = self.layer_tensors().map(|(.., t)| t.shallow_clone()).collect();
        self.forward_joined_with(x, &params, train)
    }

    /// The parameters of the layers after the embeddings with their state-dict names, in the order
    /// [`EmbeddingNN::forward_joined_with`] takes them (tensors sharing the model's storage).
    pub fn layer_params(&self) -> Vec<(String, Tensor)> {
        self.layer_tensors().map(|(k, what, t)| (format!("layers.{k}.{what}"), t.shallow_clone())).collect()
    }

    /// Each parameter of the layers after the embeddings, in order, with its layer's module path
    /// and whether it is the `weight` or the `bias`.
    fn layer_tensors(&self) -> impl Iterator<Item = (&str, &'static str, &Tensor)> {
        self.layers.iter().flat_map(|(k, layer)| {
            let (weight, bias) = match layer {
                Layer::Linear(l, ..) => (Some(&l.ws), l.bs.as_ref()),
                Layer::BatchNorm(bn, _) => (bn.ws.as_ref(), bn.bs.as_ref()),
                Layer::Dropout(_) | Layer::Relu => (None, None),
            };
            [("weight", weight), ("bias", bias)]
                .into_iter()
                .filter_map(move |(what, t)| t.map(|t| (k.as_str(), what, t)))
        })
    }

    /// [`EmbeddingNN::forward_joined`] with the layers' parameters taken from `params` (in the
    /// order of [`EmbeddingNN::layer_params`]) instead of the model's own: a training engine that
    /// keeps the parameters itself passes fresh leaf tensors, whose gradients need no zeroing.
    /// BatchNorm's running statistics are still the model's.
    pub fn forward_joined_with(&self, x: &Tensor, params: &[Tensor], train: bool) -> Tensor {
        let mut params = params.iter();
        let mut next = |has: bool| has.then(|| params.next().expect("one tensor per layer parameter"));
        let mut x = self.dropout(x, self.emb_drop, train);
        for (_, layer) in &self.layers {
            x = match layer {
                Layer::BatchNorm(bn, _) => {
                    let (weight, bias) = (next(bn.ws.is_some()), next(bn.bs.is_some()));
                    let (mean, var) = (Some(&bn.running_mean), Some(&bn.running_var));
                    Tensor::batch_norm(&x, weight, bias, mean, var, train, BN_MOMENTUM, BN_EPS, true)
                }
                Layer::Dropout(p) => self.dropout(&x, *p, train),
                Layer::Linear(l, ..) => {
                    let weight = next(true).unwrap();
                    x.linear(weight, next(l.bs.is_some()))
                }
                Layer::Relu => x.relu(),
            };
        }
        let x = x.squeeze_dim(1);
        match self.y_range {
            Some(range) => sigmoid_range(&x, range),
            None => x,
        }
    }

    /// The stream this model's dropout masks are drawn from.
    pub fn dropout_rng(&self) -> &DropoutRng {
        &self.dropout
    }

    /// Dropout of `p` when training, its mask drawn from this model's own stream.
    fn dropout(&self, x: &Tensor, p: f64, train: bool) -> Tensor {
        if train && p > 0.0 {
            let mask = Tensor::from_slice(&self.dropout.mask(x.numel(), p));
            x * mask.view(x.size().as_slice()).to_device(x.device()).to_kind(x.kind())
        } else {
            x.shallow_clone()
        }
    }
}

/// A `BatchNorm1d` of `n` features, as torch 2.13 prints one.
fn batch_norm(n: usize) -> String {
    format!("BatchNorm1d({n}, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)")
}

/// The model as fastai 2.8 on torch 2.13 prints it (`print(learn.model)`), fastai's unused
/// `bn_cont` included; a v1-layout model prints v1's modules the same way.
impl fmt::Display for EmbeddingNN {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (u, i) = (self.u_embed.size(), self.i_embed.size());
        writeln!(f, "EmbeddingNN(")?;
        writeln!(f, "  (embeds): ModuleList(")?;
        writeln!(f, "    (0): Embedding({}, {})", u[0], u[1])?;
        writeln!(f, "    (1): Embedding({}, {})", i[0], i[1])?;
        writeln!(f, "  )")?;
        writeln!(f, "  (emb_drop): Dropout(p={:?}, inplace=False)", self.emb_drop)?;
        // fastai's TabularModel has it (v1 and v2); collaborative filtering has no continuous input.
        writeln!(f, "  (bn_cont): {}", batch_norm(0))?;
        writeln!(f, "  (layers): Sequential(")?;
        let mut block = None;
        for (name, layer) in &self.layers {
            // v2's modules sit in LinBnDrop blocks: `B.N` is module N of block B.
            let (indent, k) = match name.split_once('.') {
                Some((b, n)) => {
                    if block != Some(b) {
                        if block.is_some() {
                            writeln!(f, "    )")?;
                        }
                        writeln!(f, "    ({b}): LinBnDrop(")?;
                        block = Some(b);
                    }
                    ("      ", n)
                }
                None => ("    ", name.as_str()),
            };
            match layer {
                Layer::BatchNorm(_, n) => writeln!(f, "{indent}({k}): {}", batch_norm(*n))?,
                Layer::Dropout(p) => writeln!(f, "{indent}({k}): Dropout(p={p:?}, inplace=False)")?,
                Layer::Linear(_, i, o, bias) => {
                    let bias = if *bias { "True" } else { "False" };
                    writeln!(f, "{indent}({k}): Linear(in_features={i}, out_features={o}, bias={bias})")?
                }
                Layer::Relu => writeln!(f, "{indent}({k}): ReLU(inplace=True)")?,
            }
        }
        if let Some(b) = block {
            writeln!(f, "    )")?;
            // v2 applies y_range as the Sequential's last module; v1 in `forward`.
            if let Some((lo, hi)) = self.y_range {
                let next = b.parse::<usize>().map_or(0, |b| b + 1);
                writeln!(f, "    ({next}): SigmoidRange(low={lo}, high={hi})")?;
            }
        }
        writeln!(f, "  )")?;
        write!(f, ")")
    }
}
