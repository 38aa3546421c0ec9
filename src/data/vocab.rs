//! `Vocab`: the sorted training values of a column with `#na#` at index 0 (fastai's Categorify).
use std::collections::HashMap;

use super::table::Column;

/// Name of index 0, the row for values not seen in training.
pub const NA: &str = "#na#";

/// Maps the values of a user or item column to contiguous embedding rows.
///
/// Built from the training rows only (fastai v1): index 0 is `#na#`, then the distinct training
/// values sorted (numeric order for numbers, code-point order for text). Values that appear only in
/// the validation rows map to 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    names: Vec<String>,
    index: Index,
}

/// Value → row, typed so that encoding numeric ids allocates nothing per row.
#[derive(Debug, Clone, PartialEq)]
enum Index {
    Int(HashMap<i64, u32>),
    Text(HashMap<String, u32>),
}

impl Vocab {
    /// The vocabulary of `column` restricted to `rows`.
    pub fn from_rows(column: &Column, rows: &[usize]) -> Vocab {
        let mut names: Vec<String> = match column {
            Column::Int(v) => {
                let mut ids: Vec<i64> = rows.iter().map(|&r| v[r]).collect();
                ids.sort_unstable();
                ids.dedup();
                ids.iter().map(i64::to_string).collect()
            }
            Column::Float(v) => {
                let mut xs: Vec<f64> = rows.iter().map(|&r| v[r]).collect();
                xs.sort_by(f64::total_cmp);
                xs.dedup();
                xs.iter().map(|x| format!("{x:?}")).collect()
            }
            Column::Str(v) => {
                let mut s: Vec<&str> = rows.iter().map(|&r| v[r].as_str()).collect();
                s.sort_unstable();
                s.dedup();
                s.into_iter().map(str::to_string).collect()
            }
        };
        names.insert(0, NA.to_string());
        Vocab::from_names(names, matches!(column, Column::Int(_)))
    }

    /// A vocabulary with exactly these names (index 0 is `#na#`), e.g. from a saved model;
    /// `numeric` when the names are whole-number ids.
    pub fn from_names(names: Vec<String>, numeric: bool) -> Vocab {
        let rows = names.iter().enumerate().skip(1);
        let index = if numeric {
            Index::Int(rows.filter_map(|(i, n)| Some((n.parse().ok()?, i as u32))).collect())
        } else {
            Index::Text(rows.map(|(i, n)| (n.clone(), i as u32)).collect())
        };
        Vocab { names, index }
    }

    /// Whether the names are whole-number ids (looked up by value, so `"042"` finds `42`).
    pub fn is_numeric(&self) -> bool {
        matches!(self.index, Index::Int(_))
    }

    /// Number of embedding rows, `#na#` included.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Always false: `#na#` is always there.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of row `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// All names, index order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The row of `name`, if it was seen in training.
    pub fn get(&self, name: &str) -> Option<u32> {
        match &self.index {
            Index::Int(m) => m.get(&name.trim().parse().ok()?).copied(),
            Index::Text(m) => m.get(name).copied(),
        }
    }

    /// Encodes every value of `column` at `rows`; unseen values become 0 (`#na#`).
    pub fn encode(&self, column: &Column, rows: &[usize]) -> Vec<u32> {
        match (column, &self.index) {
            (Column::Int(v), Index::Int(m)) => rows.iter().map(|&r| m.get(&v[r]).copied().unwrap_or(0)).collect(),
            (Column::Str(v), Index::Text(m)) => rows.iter().map(|&r| m.get(&v[r]).copied().unwrap_or(0)).collect(),
            (Column::Float(v), _) => rows.iter().map(|&r| self.get(&format!("{:?}", v[r])).unwrap_or(0)).collect(),
            (Column::Int(v), _) => rows.iter().map(|&r| self.get(&v[r].to_string()).unwrap_or(0)).collect(),
            (Column::Str(v), _) => rows.iter().map(|&r| self.get(&v[r]).unwrap_or(0)).collect(),
        }
    }

    /// Up to `n` known names closest to `name` (for "did you mean" messages).
    pub fn closest(&self, name: &str, n: usize) -> Vec<String> {
        let lower = name.to_lowercase();
        let mut scored: Vec<(f64, &String)> =
            self.names[1..].iter().map(|c| (strsim::jaro_winkler(&lower, &c.to_lowercase()), c)).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().take(n).filter(|(s, _)| *s > 0.7).map(|(_, c)| c.clone()).collect()
    }
}
