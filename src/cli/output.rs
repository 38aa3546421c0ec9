//! Writing result rows: an aligned table on the terminal, or CSV into a file (written atomically).
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// A score or prediction as a cell: every digit the value needs for CSV (`output` set), four
/// decimals for the table on the terminal.
pub fn number(x: f32, output: Option<&Path>) -> String {
    match output {
        Some(_) => x.to_string(),
        None => format!("{x:.4}"),
    }
}

/// Prints `rows` under `header` as an aligned table, or writes them as CSV to `output`.
pub fn emit(header: &[&str], rows: &[Vec<String>], output: Option<&Path>) -> Result<()> {
    match output {
        Some(path) => {
            write_csv(path, header, |push| rows.iter().try_for_each(|row| push(row)))?;
        }
        None => {
            let widths: Vec<usize> = (0..header.len())
                .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([header[c].len()]).max().unwrap_or(0))
                .collect();
            let mut out = std::io::stdout().lock();
            let line = |out: &mut std::io::StdoutLock, cells: &[&str]| -> std::io::Result<()> {
                let text: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
                writeln!(out, "{}", text.join("  ").trim_end())
            };
            line(&mut out, header)?;
            for row in rows {
                line(&mut out, &row.iter().map(String::as_str).collect::<Vec<_>>())?;
            }
        }
    }
    Ok(())
}

/// Writes CSV to `path` (atomically: a failed run leaves any earlier file as it was), `header` then
/// the rows `fill` pushes as it produces them, so that no more than a row is held; says how many.
pub fn write_csv(
    path: &Path,
    header: &[&str],
    fill: impl FnOnce(&mut dyn FnMut(&[String]) -> fastcollab::Result<()>) -> fastcollab::Result<()>,
) -> Result<()> {
    let mut n = 0usize;
    fastcollab::fsutil::write_atomically(path, |tmp| {
        let mut w = csv::Writer::from_path(tmp).map_err(|e| csv_error(tmp, e))?;
        w.write_record(header).map_err(|e| csv_error(tmp, e))?;
        fill(&mut |row: &[String]| {
            n += 1;
            w.write_record(row).map_err(|e| csv_error(tmp, e))
        })?;
        w.flush().map_err(|e| fastcollab::Error::io(tmp, e))
    })
    .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {n} rows to {}", path.display());
    Ok(())
}

fn csv_error(path: &Path, e: csv::Error) -> fastcollab::Error {
    fastcollab::Error::io(path, std::io::Error::other(e.to_string()))
}
