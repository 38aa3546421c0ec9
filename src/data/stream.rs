//! Lean loading of large ratings files in the ml-latest layout (`ratings.csv` of MovieLens 25M and
//! friends, or a practitioner's own): records are streamed, numeric ids parsed straight into `u32`
//! (`i64` for a column holding negative or larger ids; text ids into a number per distinct id) and
//! ratings into `f32`, other columns skipped, and the split and vocabularies built on those compact
//! arrays. Memory stays close to twice the numbers themselves (12 bytes a rating), whatever the
//! file's size.
use std::collections::HashMap;
use std::path::Path;

use super::databunch::{CollabConfig, CollabDataBunch, Encoded};
use super::provenance::Source;
use super::read::{check_regular_file, delimiter_of, parse_error};
use super::split::{random_split, Split, SplitMethod};
use super::vocab::{Vocab, NA};
use crate::error::{Error, Result};

/// The user, item and rating columns of a file, compact.
struct Raw {
    users: Ids,
    items: Ids,
    ratings: Vec<f32>,
}

impl Raw {
    /// No ratings (numeric id columns until a first id says otherwise).
    fn empty() -> Raw {
        Raw { users: Ids::Numbers(Vec::new()), items: Ids::Numbers(Vec::new()), ratings: Vec::new() }
    }
}

/// One id column as read. Its first id decides its kind: whole numbers (sorted by value in the
/// vocabulary, as pandas' int64 columns are) or text (any other first id: every id is then taken as
/// text, numbers too, and sorted as strings, as pandas' object columns are).
enum Ids {
    /// Whole numbers, all within `u32` so far (4 bytes a rating).
    Numbers(Vec<u32>),
    /// Whole numbers, some negative or beyond `u32` (database keys, hashes): any `i64`.
    Wide(Vec<i64>),
    Names {
        /// Each rating's id, as its number in `names` (order of first appearance).
        codes: Vec<u32>,
        names: Vec<String>,
        index: HashMap<String, u32>,
    },
}

impl Ids {
    /// An empty column whose kind `first` (its first id) decides.
    fn for_first(first: &str) -> Ids {
        match first.parse::<i64>() {
            Ok(_) => Ids::Numbers(Vec::new()),
            Err(_) => Ids::Names { codes: Vec::new(), names: Vec::new(), index: HashMap::new() },
        }
    }

    /// Appends `id` (trimmed, not empty), or says why it does not fit the column (whose first id
    /// was read `decided_in`: empty for this file).
    fn push(&mut self, id: &str, decided_in: &str) -> std::result::Result<(), String> {
        let not_whole = || {
            format!(
                "{id:?} is not a whole number (of 64 bits at most; the column's first id{decided_in} is one: ids are \
                 all numbers or all text)"
            )
        };
        match self {
            Ids::Numbers(ids) => match id.parse::<u32>() {
                Ok(x) => ids.push(x),
                Err(_) => {
                    let x: i64 = id.parse().map_err(|_| not_whole())?;
                    *self = Ids::Wide(ids.iter().map(|&x| x as i64).chain([x]).collect());
                }
            },
            Ids::Wide(ids) => ids.push(id.parse().map_err(|_| not_whole())?),
            Ids::Names { .. } if id == NA => {
                return Err(format!("{NA:?} names the vocabulary's row for unknown ids; it cannot be an id"))
            }
            Ids::Names { codes, names, index } => {
                let code = match index.get(id) {
                    Some(&code) => code,
                    None => {
                        let code = names.len() as u32;
                        names.push(id.to_string());
                        index.insert(id.to_string(), code);
                        code
                    }
                };
                codes.push(code);
            }
        }
        Ok(())
    }

    /// The vocabulary of the ids at `train` (sorted, `#na#` first) and each rating's row in it (0,
    /// `#na#`, for an id no training rating has).
    fn encode(&self, train: &[usize]) -> (Vocab, Rows) {
        match self {
            Ids::Numbers(ids) => {
                let (vocab, seen) = sorted_numbers(ids, train);
                (vocab, Rows::sorted(seen.into_iter().map(i64::from).collect()))
            }
            Ids::Wide(ids) => {
                let (vocab, seen) = sorted_numbers(ids, train);
                (vocab, Rows::sorted(seen))
            }
            Ids::Names { codes, names, .. } => {
                let mut seen: Vec<u32> = train.iter().map(|&r| codes[r]).collect();
                seen.sort_unstable();
                seen.dedup();
                seen.sort_by(|&a, &b| names[a as usize].cmp(&names[b as usize]));
                let mut row = vec![0u32; names.len()];
                for (k, &code) in seen.iter().enumerate() {
                    row[code as usize] = k as u32 + 1;
                }
                let vocab = std::iter::once(NA.to_string()).chain(seen.iter().map(|&c| names[c as usize].clone()));
                (Vocab::from_names(vocab.collect(), false), Rows::ByCode(row))
            }
        }
    }
}

/// The vocabulary of the numeric ids at `train` and those ids, sorted and distinct.
fn sorted_numbers<T: Ord + Copy + ToString>(ids: &[T], train: &[usize]) -> (Vocab, Vec<T>) {
    let mut seen: Vec<T> = train.iter().map(|&r| ids[r]).collect();
    seen.sort_unstable();
    seen.dedup();
    let names = std::iter::once(NA.to_string()).chain(seen.iter().map(T::to_string)).collect();
    (Vocab::from_names(names, true), seen)
}

/// Where each id of an [`Ids`] column sits in its vocabulary.
enum Rows {
    /// The sorted training ids of a numeric column (row `k + 1` is `known[k]`) and, when they are
    /// dense enough (MovieLens' are), each id's row by its offset from the first (0 for an id no
    /// training rating has): one read per rating instead of a binary search (0.5–1 s of a 7–8 s
    /// `train` on 10M ratings).
    Sorted { known: Vec<i64>, direct: Vec<u32> },
    /// The row of each text id, by its code.
    ByCode(Vec<u32>),
}

impl Rows {
    /// The rows of the sorted, distinct training ids `known`.
    fn sorted(known: Vec<i64>) -> Rows {
        let span = match (known.first(), known.last()) {
            (Some(&lo), Some(&hi)) => hi.checked_sub(lo).and_then(|d| usize::try_from(d).ok()).map(|d| d + 1),
            _ => None,
        };
        let direct = match span {
            Some(span) if span <= 64 * known.len() + (1 << 16) => {
                let mut direct = vec![0u32; span];
                for (k, &id) in known.iter().enumerate() {
                    direct[(id - known[0]) as usize] = k as u32 + 1;
                }
                direct
            }
            _ => Vec::new(),
        };
        Rows::Sorted { known, direct }
    }

    /// The row of rating `r`'s id in `ids`.
    fn of(&self, ids: &Ids, r: usize) -> u32 {
        let id = match ids {
            Ids::Numbers(ids) => ids[r] as i64,
            Ids::Wide(ids) => ids[r],
            Ids::Names { codes, .. } => {
                let Rows::ByCode(row) = self else { unreachable!("rows are built from the same column") };
                return row[codes[r] as usize];
            }
        };
        let Rows::Sorted { known, direct } = self else { unreachable!("rows are built from the same column") };
        match known.first() {
            Some(&lo) if !direct.is_empty() => id
                .checked_sub(lo)
                .and_then(|x| usize::try_from(x).ok())
                .and_then(|x| direct.get(x))
                .map_or(0, |&row| row),
            _ => known.binary_search(&id).map_or(0, |k| k as u32 + 1),
        }
    }
}

/// Files from this size on show a progress bar while they are read (on a terminal).
const LARGE_FILE: u64 = 64 << 20;

/// The three columns read: MovieLens' names.
const DEFAULT_NAMES: [&str; 3] = ["userId", "movieId", "rating"];

/// Reads the users, items and ratings of `path` from the columns named `names` (`None`:
/// [`DEFAULT_NAMES`]' where the header has it, else the column in that position, as fastai's
/// `from_df` takes the first three), checking ratings against `range`, after the ratings of `before`
/// (those of another file, named, whose first ids decided the columns' kinds); returns the header's
/// names of the columns read.
fn read(
    path: &Path,
    names: [Option<&str>; 3],
    range: Option<(f64, f64)>,
    before: Option<(Raw, &Path)>,
) -> Result<(Raw, [String; 3])> {
    check_regular_file(path)?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // Reading 25 M ratings takes seconds: a bar on a terminal for large files.
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let bar =
        (size >= LARGE_FILE).then(|| crate::progress::bytes_bar(Some(size), &format!("reading {}", path.display())));
    let mut input = std::io::BufReader::with_capacity(1 << 20, file);
    // A header is one short line: a first MiB without a line break is not a ratings file.
    let head = std::io::BufRead::fill_buf(&mut input).map_err(|e| Error::io(path, e))?;
    if head.len() == 1 << 20 && !head.contains(&b'\n') {
        return Err(parse_error(path, 1, "-", "no line break in the first MiB: not a CSV file with a header"));
    }
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let delimiter = delimiter_of(first_line);
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).from_reader(input);
    let header = reader.byte_headers().map_err(|e| parse_error(path, 1, "-", &e.to_string()))?.clone();
    let position = |name: &str| header.iter().position(|h| h == name.as_bytes());
    let mut cols = [0; 3];
    for (k, col) in cols.iter_mut().enumerate() {
        *col = match (names[k], position(DEFAULT_NAMES[k])) {
            (Some(name), _) => {
                position(name).ok_or_else(|| parse_error(path, 1, name, "no such column in the header"))?
            }
            (None, Some(c)) => c,
            (None, None) if k < header.len() => k,
            (None, None) => {
                let message = format!("no such column, and no column {} to take instead", k + 1);
                return Err(parse_error(path, 1, DEFAULT_NAMES[k], &message));
            }
        };
    }
    let names = cols.map(|c| String::from_utf8_lossy(&header[c]).into_owned());
    if cols[0] == cols[1] || cols[1] == cols[2] || cols[0] == cols[2] {
        let message = format!(
            "users, items and ratings would all come from columns {names:?}: name three different columns \
             (user_name, item_name, rating_name; `train --user-col`, `--item-col`, `--rating-col`)"
        );
        return Err(parse_error(path, 1, "-", &message));
    }
    let decided_in = before.as_ref().map(|(_, first)| format!(", in {},", first.display())).unwrap_or_default();
    let mut raw = before.map(|(raw, _)| raw);
    let mut record = csv::ByteRecord::new();
    for n in 0u64.. {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(parse_error(path, e.position().map_or(0, |p| p.line()), "-", &e.to_string())),
        }
        if let (Some(bar), true) = (&bar, n % (1 << 16) == 0) {
            bar.set_position(record.position().map_or(0, |p| p.byte()));
        }
        let line = record.position().map_or(0, |p| p.line());
        let field = |k: usize| -> Result<&str> {
            let bytes = record.get(cols[k]).ok_or_else(|| parse_error(path, line, &names[k], "missing"))?;
            std::str::from_utf8(bytes).map_err(|_| parse_error(path, line, &names[k], "invalid UTF-8"))
        };
        let id = |k: usize| -> Result<&str> {
            let text = field(k)?.trim();
            if text.is_empty() {
                return Err(parse_error(path, line, &names[k], "empty id"));
            }
            Ok(text)
        };
        let (user, item) = (id(0)?, id(1)?);
        let raw = raw.get_or_insert_with(|| Raw {
            users: Ids::for_first(user),
            items: Ids::for_first(item),
            ratings: Vec::new(),
        });
        raw.users.push(user, &decided_in).map_err(|message| parse_error(path, line, &names[0], &message))?;
        raw.items.push(item, &decided_in).map_err(|message| parse_error(path, line, &names[1], &message))?;
        let text = field(2)?;
        let rating: f32 = text
            .trim()
            .parse()
            .map_err(|_| parse_error(path, line, &names[2], &format!("{text:?} is not a number")))?;
        if !rating.is_finite() {
            return Err(parse_error(path, line, &names[2], &format!("{text:?} is not a finite number")));
        }
        if let Some((lo, hi)) = range.filter(|(lo, hi)| !(*lo..=*hi).contains(&(rating as f64))) {
            return Err(parse_error(
                path,
                line,
                &names[2],
                &format!("{text} is outside the accepted range [{lo}, {hi}]"),
            ));
        }
        raw.ratings.push(rating);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let raw = raw.unwrap_or_else(Raw::empty);
    Ok((raw, names))
}

/// Reads a ratings CSV with a header (fields separated by commas, or by tabs, semicolons or vertical
/// bars, as its header shows) and splits it like [`CollabDataBunch::from_df`]. The users,
/// items and ratings come from the columns `cfg` names, else from `userId`, `movieId` and `rating`
/// where the header has them, else from the first, second and third columns (fastai's default).
/// In each id column the ids are all whole numbers or all text, as its first id says.
pub fn load_ratings_csv(path: &Path, cfg: &CollabConfig) -> Result<CollabDataBunch> {
    cfg.validate()?;
    let file = RatingsFile::read(path, cfg)?;
    let split = random_split(file.len(), cfg.valid_pct, cfg.seed, cfg.split)?;
    let mut data = file.bunch(&split, cfg);
    data.provenance.split = cfg.split.to_string();
    data.provenance.valid_pct = cfg.valid_pct;
    Ok(data)
}

/// [`load_ratings_csv`] with the validation rows given in a second file (the same columns), for
/// a split of one's own (by time, by user): `train`'s rows train, `valid`'s validate; `cfg`'s
/// `valid_pct` and split method are not used. As with a random split, the vocabularies hold the
/// training ids only, and an id that only `valid` has is `#na#`. The ids of `valid` must be of
/// `train`'s kind (whole numbers or text).
pub fn load_train_valid_csv(train: &Path, valid: &Path, cfg: &CollabConfig) -> Result<CollabDataBunch> {
    cfg.validate()?;
    let mut file = RatingsFile::read(train, cfg)?;
    let n_train = file.len();
    file.read_more(valid, cfg)?;
    Ok(file.bunch(&Split { train: (0..n_train).collect(), valid: (n_train..file.len()).collect() }, cfg))
}

/// A ratings CSV read once, as [`load_ratings_csv`] reads it (users, items and ratings in compact
/// arrays), from which the data of any split of its rows is made: cross-validation folds without
/// reading the file again.
pub struct RatingsFile {
    raw: Raw,
    names: [String; 3],
    sources: Vec<Source>,
    path: std::path::PathBuf,
}

impl RatingsFile {
    /// Reads `path` from `cfg`'s columns (else MovieLens' names, else the first three), refusing
    /// ratings outside `cfg.rating_range`.
    pub fn read(path: &Path, cfg: &CollabConfig) -> Result<RatingsFile> {
        let (raw, names) = read(path, columns(cfg), cfg.rating_range, None)?;
        Ok(RatingsFile { raw, names, sources: vec![Source::of(path)?], path: path.to_path_buf() })
    }

    /// Appends the ratings of `path` (the same columns; ids of this file's kinds).
    fn read_more(&mut self, path: &Path, cfg: &CollabConfig) -> Result<()> {
        let before = std::mem::replace(&mut self.raw, Raw::empty());
        (self.raw, _) = read(path, columns(cfg), cfg.rating_range, Some((before, &self.path)))?;
        self.sources.push(Source::of(path)?);
        Ok(())
    }

    /// Number of ratings.
    pub fn len(&self) -> usize {
        self.raw.ratings.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.raw.ratings.is_empty()
    }

    /// The ratings, in file order.
    pub fn ratings(&self) -> &[f32] {
        &self.raw.ratings
    }

    /// The header's names of the user, item and rating columns read.
    pub fn names(&self) -> &[String; 3] {
        &self.names
    }

    /// The data of `split`: its training rows train and its validation rows validate, with
    /// vocabularies of the training ids (an id only validation rows have is `#na#`), `cfg`'s batch
    /// size and seed.
    pub fn bunch(&self, split: &Split, cfg: &CollabConfig) -> CollabDataBunch {
        let raw = &self.raw;
        let (user_vocab, users) = raw.users.encode(&split.train);
        let (item_vocab, items) = raw.items.encode(&split.train);
        let encode = |rows: &[usize]| Encoded {
            users: rows.iter().map(|&r| users.of(&raw.users, r)).collect(),
            items: rows.iter().map(|&r| items.of(&raw.items, r)).collect(),
            ratings: rows.iter().map(|&r| raw.ratings[r]).collect(),
        };
        let (train, valid) = (encode(&split.train), encode(&split.valid));
        let mut data = CollabDataBunch::from_encoded(train, valid, user_vocab, item_vocab, cfg.bs, cfg.seed)
            .with_sources(self.sources.clone());
        data.provenance.columns = self.names.clone();
        data.names = self.names.clone();
        data
    }
}

/// The accepted range of `ratings` when some lie outside it: their bulk (1st to 99th percentile)
/// widened by its span on each side (1–5 stars: −3 to 9). A rating beyond is taken for a typo when
/// no output range is given (`train --ratings`, `cv --ratings`): the file is read again with this
/// range, which stops at the first such rating with its line.
pub fn beyond_bulk(ratings: &[f32]) -> Option<(f64, f64)> {
    if ratings.is_empty() {
        return None;
    }
    let mut all = ratings.to_vec();
    let last = all.len() - 1;
    let mut at = |q: f64| *all.select_nth_unstable_by((q * last as f64).round() as usize, f32::total_cmp).1 as f64;
    let (lo, hi) = (at(0.01), at(0.99));
    let span = hi - lo;
    let accepted = (lo - span, hi + span);
    ratings.iter().any(|&r| !(accepted.0..=accepted.1).contains(&(r as f64))).then_some(accepted)
}

/// The columns `cfg` names (`None`: the defaults of [`read`]).
fn columns(cfg: &CollabConfig) -> [Option<&str>; 3] {
    [&cfg.user_name, &cfg.item_name, &cfg.rating_name].map(Option::as_deref)
}

/// Writes the rows of `path` that [`load_ratings_csv`] trains on, with this split's `valid_pct`,
/// `seed` and `method`, into `out/train.csv`, and those it validates on into `out/valid.csv`: every
/// column, in the file's order, separated by commas, so that other tools (fastai, `fastcollab
/// predict`) see the same split. Returns how many rows went into each.
pub fn write_split(path: &Path, valid_pct: f64, seed: u64, method: SplitMethod, out: &Path) -> Result<(usize, usize)> {
    check_regular_file(path)?;
    let delimiter = super::read::ReadOptions::sniffed(path)?.delimiter;
    let open = || csv::ReaderBuilder::new().delimiter(delimiter).from_path(path).map_err(|e| read_error(path, e));
    let mut record = csv::ByteRecord::new();
    let mut reader = open()?;
    let mut n = 0;
    while reader.read_byte_record(&mut record).map_err(|e| read_error(path, e))? {
        n += 1;
    }
    let split = random_split(n, valid_pct, seed, method)?;
    let mut valid = vec![false; n];
    for &r in &split.valid {
        valid[r] = true;
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let (train_path, valid_path) = (out.join("train.csv"), out.join("valid.csv"));
    let writer = |p: &Path| csv::Writer::from_path(p).map_err(|e| Error::io(p, e.into()));
    let mut writers = [writer(&train_path)?, writer(&valid_path)?];
    let mut reader = open()?;
    let header = reader.byte_headers().map_err(|e| read_error(path, e))?.clone();
    for (w, p) in writers.iter_mut().zip([&train_path, &valid_path]) {
        w.write_byte_record(&header).map_err(|e| Error::io(p, e.into()))?;
    }
    for &is_valid in &valid {
        if !reader.read_byte_record(&mut record).map_err(|e| read_error(path, e))? {
            return Err(parse_error(path, 0, "-", "the file changed while it was read"));
        }
        let (w, p) = if is_valid { (&mut writers[1], &valid_path) } else { (&mut writers[0], &train_path) };
        w.write_byte_record(&record).map_err(|e| Error::io(p, e.into()))?;
    }
    for (w, p) in writers.iter_mut().zip([&train_path, &valid_path]) {
        w.flush().map_err(|e| Error::io(p, e))?;
    }
    Ok((split.train.len(), split.valid.len()))
}

/// A CSV error reading `path`, with its line when it has one.
fn read_error(path: &Path, e: csv::Error) -> Error {
    parse_error(path, e.position().map_or(0, |p| p.line()), "-", &e.to_string())
}
