//! A small column table: just enough of a data frame for the lesson (head, merge, group-by).
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};

/// One typed column.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Whole numbers (ids, integer ratings, timestamps).
    Int(Vec<i64>),
    /// Real numbers (fractional ratings).
    Float(Vec<f64>),
    /// Text (titles, zip codes).
    Str(Vec<String>),
}

/// One cell, owned.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub enum Value {
    /// A whole number.
    Int(i64),
    /// A real number.
    Float(f64),
    /// Text.
    Str(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v:?}"),
            Value::Str(v) => f.write_str(v),
        }
    }
}

impl Column {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Column::Int(v) => v.len(),
            Column::Float(v) => v.len(),
            Column::Str(v) => v.len(),
        }
    }

    /// True when the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cell at `row`.
    pub fn value(&self, row: usize) -> Value {
        match self {
            Column::Int(v) => Value::Int(v[row]),
            Column::Float(v) => Value::Float(v[row]),
            Column::Str(v) => Value::Str(v[row].clone()),
        }
    }

    /// The column as numbers, for targets and means; `None` for text.
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        match self {
            Column::Int(v) => Some(v.iter().map(|&x| x as f64).collect()),
            Column::Float(v) => Some(v.clone()),
            Column::Str(_) => None,
        }
    }

    /// The rows `rows`, in that order.
    pub fn take(&self, rows: &[usize]) -> Column {
        match self {
            Column::Int(v) => Column::Int(rows.iter().map(|&r| v[r]).collect()),
            Column::Float(v) => Column::Float(rows.iter().map(|&r| v[r]).collect()),
            Column::Str(v) => Column::Str(rows.iter().map(|&r| v[r].clone()).collect()),
        }
    }

    fn cell(&self, row: usize) -> String {
        self.value(row).to_string()
    }
}

/// Named columns of equal length.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    names: Vec<String>,
    columns: Vec<Column>,
}

/// Per-group count and mean, as pandas' `groupby(by)[col].count()` / `.mean()` give them.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStat {
    /// The group's key.
    pub key: Value,
    /// Rows in the group.
    pub count: usize,
    /// Mean of the value column over the group.
    pub mean: f64,
}

impl Table {
    /// Builds a table; every column must have the same length and names must be unique.
    pub fn new(names: Vec<String>, columns: Vec<Column>) -> Result<Self> {
        if names.len() != columns.len() {
            return Err(Error::Shape(format!("{} names for {} columns", names.len(), columns.len())));
        }
        if let Some(c) = columns.iter().find(|c| c.len() != columns[0].len()) {
            return Err(Error::Shape(format!("columns of unequal length ({} and {})", columns[0].len(), c.len())));
        }
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(Error::InvalidConfig(format!("column {n:?} appears twice")));
            }
        }
        Ok(Table { names, columns })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.columns.first().map_or(0, Column::len)
    }

    /// True when the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Column names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Result<&Column> {
        self.position(name).map(|i| &self.columns[i])
    }

    /// The column at position `index` (0-based).
    pub fn column_at(&self, index: usize) -> Option<(&str, &Column)> {
        Some((self.names.get(index)?.as_str(), self.columns.get(index)?))
    }

    fn position(&self, name: &str) -> Result<usize> {
        self.names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| Error::NoColumn { name: name.to_string(), available: self.names.clone() })
    }

    /// A table of the named columns only.
    pub fn select(&self, names: &[&str]) -> Result<Table> {
        let columns = names.iter().map(|n| self.column(n).cloned()).collect::<Result<_>>()?;
        Table::new(names.iter().map(|n| n.to_string()).collect(), columns)
    }

    /// The rows `rows`, in that order.
    pub fn take(&self, rows: &[usize]) -> Table {
        Table { names: self.names.clone(), columns: self.columns.iter().map(|c| c.take(rows)).collect() }
    }

    /// The first `n` rows, printed like pandas' `head()`.
    pub fn head(&self, n: usize) -> Head<'_> {
        Head { table: self, rows: n.min(self.len()) }
    }

    /// Inner join on column `on`, like `self.merge(other)` in pandas 1.x: rows come grouped by key,
    /// keys in order of first appearance in `self`, rows of one key in their original order.
    ///
    /// This is the row order the lesson (and fastai v1's seeded split) saw; pandas 2 and later keep
    /// the left order instead. Columns of `other` other than `on` are appended.
    pub fn merge(&self, other: &Table, on: &str) -> Result<Table> {
        let left_key = self.column(on)?;
        let right_key = other.column(on)?;
        let mut right_rows: HashMap<String, Vec<usize>> = HashMap::new();
        for r in 0..right_key.len() {
            right_rows.entry(right_key.cell(r)).or_default().push(r);
        }
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
        for l in 0..left_key.len() {
            let key = left_key.cell(l);
            groups
                .entry(key)
                .or_insert_with_key(|k| {
                    order.push(k.clone());
                    Vec::new()
                })
                .push(l);
        }
        let (mut left, mut right) = (Vec::new(), Vec::new());
        for key in &order {
            let Some(rs) = right_rows.get(key) else { continue };
            for &l in &groups[key] {
                for &r in rs {
                    left.push(l);
                    right.push(r);
                }
            }
        }
        let mut names = self.names.clone();
        let mut columns: Vec<Column> = self.columns.iter().map(|c| c.take(&left)).collect();
        for (n, c) in other.names.iter().zip(&other.columns) {
            if n != on {
                let name = if names.contains(n) { format!("{n}_y") } else { n.clone() };
                names.push(name);
                columns.push(c.take(&right));
            }
        }
        Table::new(names, columns)
    }

    /// Count and mean of `value` per distinct `by`, sorted by key (pandas' groupby order).
    pub fn group_stats(&self, by: &str, value: &str) -> Result<Vec<GroupStat>> {
        let keys = self.column(by)?;
        let values = self
            .column(value)?
            .to_f64()
            .ok_or_else(|| Error::InvalidConfig(format!("column {value:?} is text; a mean needs numbers")))?;
        let mut acc: HashMap<String, (Value, usize, f64)> = HashMap::new();
        for (row, v) in values.iter().enumerate() {
            let e = acc.entry(keys.cell(row)).or_insert_with(|| (keys.value(row), 0, 0.0));
            e.1 += 1;
            e.2 += v;
        }
        let mut stats: Vec<GroupStat> =
            acc.into_values().map(|(key, count, sum)| GroupStat { key, count, mean: sum / count as f64 }).collect();
        stats.sort_by(|a, b| a.key.partial_cmp(&b.key).unwrap_or(std::cmp::Ordering::Equal));
        Ok(stats)
    }

    /// Writes the table as comma-separated UTF-8 with a header row.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let io = |e: csv::Error| Error::io(path, e.into());
        let mut w = csv::Writer::from_path(path).map_err(io)?;
        w.write_record(&self.names).map_err(io)?;
        for row in 0..self.len() {
            w.write_record(self.columns.iter().map(|c| c.cell(row))).map_err(io)?;
        }
        w.flush().map_err(|e| Error::io(path, e))
    }
}

/// The first rows of a table; `Display` prints them like pandas.
pub struct Head<'a> {
    table: &'a Table,
    rows: usize,
}

impl fmt::Display for Head<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.table;
        let index_width = self.rows.saturating_sub(1).to_string().len();
        let widths: Vec<usize> = t
            .names
            .iter()
            .zip(&t.columns)
            .map(|(n, c)| (0..self.rows).map(|r| c.cell(r).chars().count()).max().unwrap_or(0).max(n.chars().count()))
            .collect();
        write!(f, "{:index_width$}", "")?;
        for ((n, c), w) in t.names.iter().zip(&t.columns).zip(&widths) {
            match c {
                Column::Str(_) => write!(f, "  {n:<w$}")?,
                _ => write!(f, "  {n:>w$}")?,
            }
        }
        writeln!(f)?;
        for r in 0..self.rows {
            write!(f, "{r:<index_width$}")?;
            for (c, w) in t.columns.iter().zip(&widths) {
                match c {
                    Column::Str(_) => write!(f, "  {:<w$}", c.cell(r))?,
                    _ => write!(f, "  {:>w$}", c.cell(r))?,
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.head(5))?;
        write!(f, "[{} rows x {} columns]", self.len(), self.names.len())
    }
}
