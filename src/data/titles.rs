//! Item titles for display: a table of item ids and titles (MovieLens' `movies.csv`, `u.item`, or
//! a file of your own) matched to an item vocabulary, so that recommendations read as titles while
//! the model's items stay ids (unique, unlike titles).
use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::provenance::Source;
use super::read::{parse_error, read_delimited, Kind, ReadOptions};
use super::table::Table;
use super::vocab::Vocab;
use crate::error::{Error, Result};

/// The column a titles file's titles are read from when its header has it.
pub const TITLE_COLUMN: &str = "title";

/// Titles by item id, as read from a table.
#[derive(Debug, Clone)]
pub struct ItemTitles {
    /// `(id, title)` in the table's order, each id once.
    pairs: Vec<(String, String)>,
    /// The id and title columns they were read from.
    pub columns: [String; 2],
    /// The file read, when read from one (for provenance).
    pub source: Option<Source>,
}

impl ItemTitles {
    /// Reads a delimited file with a header (commas, tabs, semicolons or bars, as ratings files):
    /// ids from the column `id_column` where the header has it (the ratings' item column, e.g.
    /// `movieId`), else the first; titles from [`TITLE_COLUMN`] where it has it, else the second.
    /// An id given a second, different title is an error naming its line.
    pub fn read(path: &Path, id_column: &str) -> Result<ItemTitles> {
        let sniffed = ReadOptions::sniffed(path)?;
        let header = {
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(sniffed.delimiter)
                .from_path(path)
                .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?;
            let names = reader.headers().map_err(|e| parse_error(path, 1, "-", &e.to_string()))?;
            names.iter().map(str::to_string).collect::<Vec<_>>()
        };
        if header.len() < 2 {
            return Err(parse_error(path, 1, "-", "a titles file needs an id column and a title column"));
        }
        let pick = |want: &str, fallback: usize| header.iter().position(|n| n == want).unwrap_or(fallback);
        let (id, title) = (pick(id_column, 0), pick(TITLE_COLUMN, 1));
        if id == title {
            return Err(parse_error(path, 1, &header[id], "the id and title columns are the same column"));
        }
        // Every column as text: ids are matched to the vocabulary as it parses them.
        let schema = header.iter().map(|n| (n.clone(), Kind::Str)).collect();
        let table = read_delimited(path, &ReadOptions { schema: Some(schema), ..sniffed })?;
        let mut titles = Self::from_table(&table, &header[id], &header[title])?;
        if let Some((record, message)) = titles.second_title(&table)? {
            return Err(parse_error(path, line_of(path, sniffed.delimiter, record), &header[id], &message));
        }
        titles.source = Some(Source::of(path)?);
        Ok(titles)
    }

    /// The ids of column `id` and the titles of column `title` of `table` (ml-100k's `u.item`:
    /// `movieId`, `title`); an id repeated keeps its first title.
    pub fn from_table(table: &Table, id: &str, title: &str) -> Result<ItemTitles> {
        let (ids, titles) = (table.column(id)?, table.column(title)?);
        let mut seen = HashSet::new();
        let mut pairs = Vec::new();
        for r in 0..table.len() {
            let key = ids.value(r).to_string().trim().to_string();
            if seen.insert(key.clone()) {
                pairs.push((key, titles.value(r).to_string()));
            }
        }
        Ok(ItemTitles { pairs, columns: [id.to_string(), title.to_string()], source: None })
    }

    /// The first record of `table` (1-based, header not counted) that gives an id a title other
    /// than its first, with what is wrong.
    fn second_title(&self, table: &Table) -> Result<Option<(u64, String)>> {
        let [id, title] = &self.columns;
        let (ids, titles) = (table.column(id)?, table.column(title)?);
        let first: HashMap<&str, &str> = self.pairs.iter().map(|(i, t)| (i.as_str(), t.as_str())).collect();
        Ok((0..table.len()).find_map(|r| {
            let (key, title) = (ids.value(r).to_string(), titles.value(r).to_string());
            let kept = *first.get(key.trim())?;
            (kept != title).then(|| {
                (r as u64 + 1, format!("item {:?} has a second title, {title:?} (the first: {kept:?})", key.trim()))
            })
        }))
    }

    /// Titles in the row order of `vocab` (`""` for `#na#` and for items without a title), and how
    /// many of its items have none. Ids are matched as the vocabulary reads them (numeric ids by
    /// value); ids the vocabulary does not have are left out.
    pub fn for_vocab(&self, vocab: &Vocab) -> (Vec<String>, usize) {
        let mut out = vec![String::new(); vocab.len()];
        for (id, title) in &self.pairs {
            if let Some(row) = vocab.get(id) {
                let slot = &mut out[row as usize];
                if slot.is_empty() {
                    *slot = title.clone();
                }
            }
        }
        let missing = out.iter().skip(1).filter(|t| t.is_empty()).count();
        (out, missing)
    }
}

/// The file line of record `record` (1-based, header not counted; a quoted field may span lines).
fn line_of(path: &Path, delimiter: u8, record: u64) -> u64 {
    let Ok(mut reader) = csv::ReaderBuilder::new().delimiter(delimiter).from_path(path) else { return 0 };
    let at = reader.byte_records().nth(record as usize - 1);
    at.and_then(|rec| Some(rec.ok()?.position()?.line())).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("fastcollab-titles-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn vocab(ids: &[&str], numeric: bool) -> Vocab {
        let names = std::iter::once("#na#").chain(ids.iter().copied()).map(String::from).collect();
        Vocab::from_names(names, numeric)
    }

    #[test]
    fn titles_follow_the_vocabulary_by_id_value_with_quoted_commas() {
        let path = file(
            "movies.csv",
            "movieId,title,genres\n1,Toy Story (1995),Animation\n11,\"American President, The (1995)\",Comedy\n\
             7,Sabrina (1995),Romance\n",
        );
        let titles = ItemTitles::read(&path, "movieId").unwrap();
        assert_eq!(titles.columns, ["movieId", "title"].map(String::from));
        let (rows, missing) = titles.for_vocab(&vocab(&["1", "2", "11"], true));
        assert_eq!(rows, ["", "Toy Story (1995)", "", "American President, The (1995)"]);
        assert_eq!(missing, 1);
        assert_eq!(titles.source.unwrap().path, path.display().to_string());
    }

    #[test]
    fn without_the_named_columns_the_first_two_are_taken() {
        let path = file("items.tsv", "sku\tname\nA-1\tRed shoe\nB-2\tBlue hat\n");
        let titles = ItemTitles::read(&path, "movieId").unwrap();
        assert_eq!(titles.columns, ["sku", "name"].map(String::from));
        let (rows, missing) = titles.for_vocab(&vocab(&["B-2", "A-1"], false));
        assert_eq!((rows, missing), (vec!["".into(), "Blue hat".into(), "Red shoe".into()], 0));
    }

    #[test]
    fn an_id_with_two_titles_is_refused_by_line() {
        let path = file("twice.csv", "movieId,title\n1,Toy Story\n2,\"Heat,\nthe film\"\n1,Toy Story 2\n");
        let err = ItemTitles::read(&path, "movieId").unwrap_err().to_string();
        assert!(err.contains("twice.csv:5: field \"movieId\""), "{err}");
        assert!(err.contains("\"Toy Story 2\""), "{err}");
        let one = file("one.csv", "movieId\n1\n");
        assert!(ItemTitles::read(&one, "movieId").unwrap_err().to_string().contains("needs an id column and a title"));
    }
}
