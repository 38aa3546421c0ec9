//! Principal component analysis of embedding weights (fastai's `Tensor.pca`).
use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// The first `k` principal components of a matrix and how much variance each explains.
#[derive(Debug)]
pub struct Pca {
    /// The centred rows projected on the components, `[n, k]`.
    pub projected: Tensor,
    /// The components (unit columns), `[f, k]`.
    pub components: Tensor,
    /// Variance along each component (squared singular value / (n − 1)).
    pub explained_variance: Vec<f64>,
    /// Share of the total variance along each component.
    pub explained_ratio: Vec<f64>,
}

impl Pca {
    /// Every row's coordinate on component `k` (fastai's `movie_pca[k]`, here a column).
    pub fn factor(&self, k: usize) -> Result<Vec<f64>> {
        Ok(Vec::try_from(self.projected.f_select(1, k as i64)?.to_kind(Kind::Double))?)
    }
}

/// Centres the columns of `x` `[n, f]`, takes the SVD of its transpose, and projects on the first
/// `k` left singular vectors, as fastai does. A component's sign is arbitrary.
pub fn pca(x: &Tensor, k: usize) -> Result<Pca> {
    let size = x.size();
    if size.len() != 2 || k == 0 || k as i64 > size[1].min(size[0]) {
        return Err(Error::Shape(format!(
            "pca({k}) needs a 2-d matrix with at least {k} rows and columns, got {size:?}"
        )));
    }
    tch::no_grad(|| {
        let x = x.to_kind(Kind::Double);
        let xc = &x - x.mean_dim(0, true, Kind::Double);
        let (u, s, _) = xc.transpose(0, 1).svd(true, true);
        let components = u.narrow(1, 0, k as i64);
        let var: Vec<f64> = Vec::try_from(&(s.square() / (size[0] - 1).max(1) as f64))?;
        let total: f64 = var.iter().sum();
        Ok(Pca {
            projected: xc.matmul(&components).to_kind(Kind::Float),
            components: components.to_kind(Kind::Float),
            explained_ratio: var[..k].iter().map(|v| v / total).collect(),
            explained_variance: var[..k].to_vec(),
        })
    })
}
