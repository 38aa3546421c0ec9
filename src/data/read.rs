//! Reading delimited text files into a [`Table`], with errors that name the file, line and field.
use std::path::Path;

use super::table::{Column, Table};
use crate::error::{Error, Result};

/// How the bytes of a file map to text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// UTF-8; invalid bytes are an error naming the line.
    #[default]
    Utf8,
    /// ISO-8859-1 as the WHATWG defines it (windows-1252), what pandas' `encoding='latin-1'` reads
    /// for MovieLens 100k.
    Latin1,
}

/// The type a column is parsed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Whole numbers.
    Int,
    /// Real numbers.
    Float,
    /// Text.
    Str,
}

/// Options for [`read_delimited`].
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Field separator, e.g. `b'\t'`, `b'|'` or `b','`.
    pub delimiter: u8,
    /// Whether the first line holds the column names.
    pub header: bool,
    /// Column names and types; `None` takes names from the header and infers types.
    pub schema: Option<Vec<(String, Kind)>>,
    /// Text encoding of the file.
    pub encoding: Encoding,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { delimiter: b',', header: true, schema: None, encoding: Encoding::Utf8 }
    }
}

/// Reads a delimited file. With a schema, each field is parsed as its column's kind and the first
/// bad field fails with its file, line and column name; without one, a column is `Int` if every
/// value parses as one, else `Float`, else `Str`.
pub fn read_delimited(path: &Path, opts: &ReadOptions) -> Result<Table> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = match opts.encoding {
        Encoding::Latin1 => encoding_rs::WINDOWS_1252.decode_without_bom_handling(&bytes).0.into_owned(),
        Encoding::Utf8 => String::from_utf8(bytes).map_err(|e| {
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            parse_error(
                path,
                1 + good.iter().filter(|&&b| b == b'\n').count() as u64,
                "-",
                "invalid UTF-8 (is the file latin-1?)",
            )
        })?,
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(opts.delimiter)
        .has_headers(opts.header)
        .quoting(opts.delimiter == b',')
        .flexible(true)
        .from_reader(text.as_bytes());
    let csv_err = |e: csv::Error| {
        let line = e.position().map_or(0, |p| p.line());
        parse_error(path, line, "-", &e.to_string())
    };
    let names: Vec<String> = match (&opts.schema, opts.header) {
        (Some(s), _) => s.iter().map(|(n, _)| n.clone()).collect(),
        (None, true) => reader.headers().map_err(csv_err)?.iter().map(str::to_string).collect(),
        (None, false) => {
            return Err(Error::InvalidConfig("a file without a header needs a schema (column names)".into()))
        }
    };
    let mut raw: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    let mut lines: Vec<u64> = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != names.len() {
            let message = format!("expected {} fields, found {}", names.len(), record.len());
            return Err(parse_error(path, line, &names[record.len().min(names.len() - 1)], &message));
        }
        for (col, field) in raw.iter_mut().zip(record.iter()) {
            col.push(field.to_string());
        }
        lines.push(line);
    }
    let kinds: Vec<Kind> = match &opts.schema {
        Some(s) => s.iter().map(|(_, k)| *k).collect(),
        None => raw.iter().map(|c| infer(c)).collect(),
    };
    let columns = raw
        .into_iter()
        .zip(&kinds)
        .zip(&names)
        .map(|((values, kind), name)| parse_column(values, *kind, |row, msg| parse_error(path, lines[row], name, msg)))
        .collect::<Result<Vec<_>>>()?;
    Table::new(names, columns)
}

fn infer(values: &[String]) -> Kind {
    if values.iter().all(|v| v.trim().parse::<i64>().is_ok()) {
        Kind::Int
    } else if values.iter().all(|v| v.trim().parse::<f64>().is_ok()) {
        Kind::Float
    } else {
        Kind::Str
    }
}

fn parse_column(values: Vec<String>, kind: Kind, err: impl Fn(usize, &str) -> Error) -> Result<Column> {
    Ok(match kind {
        Kind::Str => Column::Str(values),
        Kind::Int => Column::Int(
            values
                .iter()
                .enumerate()
                .map(|(row, v)| v.trim().parse().map_err(|_| err(row, &format!("{v:?} is not a whole number"))))
                .collect::<Result<_>>()?,
        ),
        Kind::Float => Column::Float(
            values
                .iter()
                .enumerate()
                .map(|(row, v)| v.trim().parse().map_err(|_| err(row, &format!("{v:?} is not a number"))))
                .collect::<Result<_>>()?,
        ),
    })
}

/// A [`Error::Parse`] for `path`, `line`, `field`.
pub(crate) fn parse_error(path: &Path, line: u64, field: &str, message: &str) -> Error {
    Error::Parse { path: path.to_path_buf(), line, field: field.to_string(), message: message.to_string() }
}
