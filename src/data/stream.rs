//! Lean loading of large ratings files in the ml-latest layout (`ratings.csv` of MovieLens 25M and
//! friends): records are streamed, ids parsed straight into `u32` and ratings into `f32`, other
//! columns skipped, and the split and vocabularies built on those compact arrays. Memory stays
//! close to twice the numbers themselves (12 bytes a rating), whatever the file's size.
use std::path::Path;

use super::databunch::{CollabConfig, CollabDataBunch, Encoded};
use super::provenance::Source;
use super::read::{check_regular_file, parse_error};
use super::split::random_split;
use super::vocab::{Vocab, NA};
use crate::error::{Error, Result};

/// The user, item and rating columns of a file, compact.
struct Raw {
    users: Vec<u32>,
    items: Vec<u32>,
    ratings: Vec<f32>,
}

fn read(path: &Path, names: [&str; 3], range: Option<(f64, f64)>) -> Result<Raw> {
    check_regular_file(path)?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut input = std::io::BufReader::with_capacity(1 << 20, file);
    // A header is one short line: a first MiB without a line break is not a ratings file.
    let head = std::io::BufRead::fill_buf(&mut input).map_err(|e| Error::io(path, e))?;
    if head.len() == 1 << 20 && !head.contains(&b'\n') {
        return Err(parse_error(path, 1, "-", "no line break in the first MiB: not a CSV file with a header"));
    }
    let mut reader = csv::ReaderBuilder::new().from_reader(input);
    let header = reader.byte_headers().map_err(|e| parse_error(path, 1, "-", &e.to_string()))?.clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name.as_bytes())
            .ok_or_else(|| parse_error(path, 1, name, "no such column in the header"))
    };
    let cols = [column(names[0])?, column(names[1])?, column(names[2])?];
    let mut raw = Raw { users: Vec::new(), items: Vec::new(), ratings: Vec::new() };
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(parse_error(path, e.position().map_or(0, |p| p.line()), "-", &e.to_string())),
        }
        let line = record.position().map_or(0, |p| p.line());
        let field = |k: usize| -> Result<&str> {
            let bytes = record.get(cols[k]).ok_or_else(|| parse_error(path, line, names[k], "missing"))?;
            std::str::from_utf8(bytes).map_err(|_| parse_error(path, line, names[k], "invalid UTF-8"))
        };
        let id = |k: usize| -> Result<u32> {
            let text = field(k)?;
            text.trim()
                .parse()
                .map_err(|_| parse_error(path, line, names[k], &format!("{text:?} is not a whole number")))
        };
        raw.users.push(id(0)?);
        raw.items.push(id(1)?);
        let text = field(2)?;
        let rating: f32 =
            text.trim().parse().map_err(|_| parse_error(path, line, names[2], &format!("{text:?} is not a number")))?;
        if !rating.is_finite() {
            return Err(parse_error(path, line, names[2], &format!("{text:?} is not a finite number")));
        }
        if let Some((lo, hi)) = range.filter(|(lo, hi)| !(*lo..=*hi).contains(&(rating as f64))) {
            return Err(parse_error(
                path,
                line,
                names[2],
                &format!("{text} is outside the accepted range [{lo}, {hi}]"),
            ));
        }
        raw.ratings.push(rating);
    }
    Ok(raw)
}

/// Sorted distinct ids of `ids` at `rows`, and the vocabulary naming them (`#na#` first).
fn vocab(ids: &[u32], rows: impl Iterator<Item = usize>) -> (Vec<u32>, Vocab) {
    let mut seen: Vec<u32> = rows.map(|r| ids[r]).collect();
    seen.sort_unstable();
    seen.dedup();
    let names = std::iter::once(NA.to_string()).chain(seen.iter().map(u32::to_string)).collect();
    (seen, Vocab::from_names(names, true))
}

/// Row of `id` in a vocabulary whose sorted ids are `known` (0, `#na#`, when absent).
fn row_of(known: &[u32], id: u32) -> u32 {
    known.binary_search(&id).map_or(0, |k| k as u32 + 1)
}

/// Reads a ratings CSV with a header (columns named by `cfg`, default `userId`, `movieId`,
/// `rating`; ids must be whole numbers) and splits it like [`CollabDataBunch::from_df`].
pub fn load_ratings_csv(path: &Path, cfg: &CollabConfig) -> Result<CollabDataBunch> {
    cfg.validate()?;
    let name = |n: &Option<String>, default: &'static str| n.clone().unwrap_or_else(|| default.to_string());
    let names = [name(&cfg.user_name, "userId"), name(&cfg.item_name, "movieId"), name(&cfg.rating_name, "rating")];
    let raw = read(path, [&names[0], &names[1], &names[2]], cfg.rating_range)?;
    let split = random_split(raw.ratings.len(), cfg.valid_pct, cfg.seed, cfg.split)?;
    let (users, user_vocab) = vocab(&raw.users, split.train.iter().copied());
    let (items, item_vocab) = vocab(&raw.items, split.train.iter().copied());
    let encode = |rows: &[usize]| Encoded {
        users: rows.iter().map(|&r| row_of(&users, raw.users[r])).collect(),
        items: rows.iter().map(|&r| row_of(&items, raw.items[r])).collect(),
        ratings: rows.iter().map(|&r| raw.ratings[r]).collect(),
    };
    let (train, valid) = (encode(&split.train), encode(&split.valid));
    let mut data = CollabDataBunch::from_encoded(train, valid, user_vocab, item_vocab, cfg.bs, cfg.seed)
        .with_sources(vec![Source::of(path)?]);
    data.provenance.split = cfg.split.to_string();
    data.provenance.valid_pct = cfg.valid_pct;
    data.provenance.columns = names.clone();
    data.names = names;
    Ok(data)
}
