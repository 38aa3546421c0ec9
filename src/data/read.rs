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
    /// ISO-8859-1: every byte is the code point of the same value, exactly what Python's (and so
    /// pandas') `encoding='latin-1'` decodes (not windows-1252, which maps 0x80–0x9F to other
    /// characters).
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

impl ReadOptions {
    /// The defaults, with the field separator the header of `path` shows ([`delimiter_of`]).
    pub fn sniffed(path: &Path) -> Result<ReadOptions> {
        use std::io::{BufRead, Read};
        check_regular_file(path)?;
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut line = Vec::new();
        std::io::BufReader::new(file.take(1 << 20)).read_until(b'\n', &mut line).map_err(|e| Error::io(path, e))?;
        Ok(ReadOptions { delimiter: delimiter_of(&line), ..ReadOptions::default() })
    }
}

/// The field separator of a file whose header is `line`: a comma where the header has one, else a
/// tab, a semicolon or a vertical bar, the first of them it has (a comma when it has none: one
/// column).
pub fn delimiter_of(line: &[u8]) -> u8 {
    *[b',', b'\t', b';', b'|'].iter().find(|d| line.contains(d)).unwrap_or(&b',')
}

/// Reads a delimited file. With a schema, records are streamed and each field is parsed straight
/// into its typed column (no string per number, so a 25M-row `ratings.csv` stays lean), and the
/// first bad field fails with its file, line and column name. Without one, a column is `Int` if
/// every value parses as one, else `Float`, else `Str`.
pub fn read_delimited(path: &Path, opts: &ReadOptions) -> Result<Table> {
    check_regular_file(path)?;
    let input: Box<dyn std::io::Read> = match opts.encoding {
        Encoding::Utf8 => {
            let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            Box::new(std::io::BufReader::with_capacity(1 << 20, file))
        }
        Encoding::Latin1 => {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            let text = encoding_rs::mem::decode_latin1(&bytes).into_owned();
            Box::new(std::io::Cursor::new(text.into_bytes()))
        }
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(opts.delimiter)
        .has_headers(opts.header)
        .quoting(opts.delimiter == b',')
        .flexible(true)
        .from_reader(input);
    let csv_err = |e: csv::Error| {
        let line = e.position().map_or(0, |p| p.line());
        parse_error(path, line, "-", &e.to_string())
    };
    let (names, kinds): (Vec<String>, Option<Vec<Kind>>) = match (&opts.schema, opts.header) {
        (Some(s), _) => (s.iter().map(|(n, _)| n.clone()).collect(), Some(s.iter().map(|(_, k)| *k).collect())),
        (None, true) => (reader.headers().map_err(csv_err)?.iter().map(str::to_string).collect(), None),
        (None, false) => {
            return Err(Error::InvalidConfig("a file without a header needs a schema (column names)".into()))
        }
    };
    let mut builders: Vec<Builder> = match &kinds {
        Some(k) => k.iter().map(|k| Builder::new(*k)).collect(),
        None => names.iter().map(|_| Builder::Raw(Vec::new(), Vec::new())).collect(),
    };
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record).map_err(csv_err)? {
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != names.len() {
            let message = format!("expected {} fields, found {}", names.len(), record.len());
            return Err(parse_error(path, line, &names[record.len().min(names.len() - 1)], &message));
        }
        for ((builder, field), name) in builders.iter_mut().zip(record.iter()).zip(&names) {
            let text = std::str::from_utf8(field)
                .map_err(|_| parse_error(path, line, name, "invalid UTF-8 (is the file latin-1?)"))?;
            builder.push(text, line).map_err(|message| parse_error(path, line, name, &message))?;
        }
    }
    let columns = builders
        .into_iter()
        .zip(&names)
        .map(|(b, name)| b.finish().map_err(|(line, message)| parse_error(path, line, name, &message)))
        .collect::<Result<Vec<_>>>()?;
    Table::new(names, columns)
}

/// A column being read: typed when the schema says so, raw text (with line numbers) to infer later.
enum Builder {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Str(Vec<String>),
    Raw(Vec<String>, Vec<u64>),
}

impl Builder {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Int => Builder::Int(Vec::new()),
            Kind::Float => Builder::Float(Vec::new()),
            Kind::Str => Builder::Str(Vec::new()),
        }
    }

    fn push(&mut self, text: &str, line: u64) -> std::result::Result<(), String> {
        match self {
            Builder::Int(v) => v.push(text.trim().parse().map_err(|_| format!("{text:?} is not a whole number"))?),
            Builder::Float(v) => v.push(text.trim().parse().map_err(|_| format!("{text:?} is not a number"))?),
            Builder::Str(v) => v.push(text.to_string()),
            Builder::Raw(v, lines) => {
                v.push(text.to_string());
                lines.push(line);
            }
        }
        Ok(())
    }

    fn finish(self) -> std::result::Result<Column, (u64, String)> {
        Ok(match self {
            Builder::Int(v) => Column::Int(v),
            Builder::Float(v) => Column::Float(v),
            Builder::Str(v) => Column::Str(v),
            Builder::Raw(values, lines) => {
                let mut typed = Builder::new(infer(&values));
                for (v, line) in values.iter().zip(&lines) {
                    typed.push(v, *line).map_err(|m| (*line, m))?;
                }
                return typed.finish();
            }
        })
    }
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

/// Refuses what is not a regular file (a device such as `/dev/zero`, a pipe, a folder), which
/// could never end or would be read as garbage.
pub(crate) fn check_regular_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        Ok(())
    } else {
        Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file")))
    }
}

/// A [`Error::Parse`] for `path`, `line`, `field`.
pub(crate) fn parse_error(path: &Path, line: u64, field: &str, message: &str) -> Error {
    Error::Parse { path: path.to_path_buf(), line, field: field.to_string(), message: message.to_string() }
}
