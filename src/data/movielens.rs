//! Readers for the MovieLens files: ml-100k (`u.data`, `u.item`, `u.user`, `u.genre`) and the
//! ml-latest CSV layout (`ratings.csv`, `movies.csv`).
use std::path::Path;

use super::provenance::Source;
use super::read::{read_delimited, Encoding, Kind, ReadOptions};
use super::split::{random_split, SplitMethod};
use super::table::{Column, Table};
use crate::error::{Error, Result};

/// Column names the lesson uses.
pub const USER: &str = "userId";
/// Item id column.
pub const ITEM: &str = "movieId";
/// Rating column.
pub const RATING: &str = "rating";
/// Title column.
pub const TITLE: &str = "title";

fn schema(cols: &[(&str, Kind)]) -> Option<Vec<(String, Kind)>> {
    Some(cols.iter().map(|(n, k)| (n.to_string(), *k)).collect())
}

/// `u.data` (or any `u1.base`… split): tab-separated `userId movieId rating timestamp`, no header.
pub fn read_ratings(path: &Path) -> Result<Table> {
    let cols = [(USER, Kind::Int), (ITEM, Kind::Int), (RATING, Kind::Int), ("timestamp", Kind::Int)];
    read_delimited(path, &ReadOptions { delimiter: b'\t', header: false, schema: schema(&cols), ..Default::default() })
}

/// `u.genre`: the 19 genre names, in flag order.
pub fn read_genres(path: &Path) -> Result<Vec<String>> {
    let cols = [("genre", Kind::Str), ("index", Kind::Int)];
    let t = read_delimited(
        path,
        &ReadOptions { delimiter: b'|', header: false, schema: schema(&cols), ..Default::default() },
    )?;
    match t.column("genre")? {
        Column::Str(names) => Ok(names.clone()),
        _ => unreachable!("schema says Str"),
    }
}

/// `u.item`: pipe-separated latin-1, 24 fields: movieId, title, date, N (video date), url and one
/// 0/1 flag per genre, named from `u.genre` in the same folder (or `g0`…`g18` when it is absent).
pub fn read_movies(path: &Path) -> Result<Table> {
    let genre_file = path.with_file_name("u.genre");
    let genres =
        if genre_file.exists() { read_genres(&genre_file)? } else { (0..19).map(|i| format!("g{i}")).collect() };
    let mut cols: Vec<(String, Kind)> =
        [(ITEM, Kind::Int), (TITLE, Kind::Str), ("date", Kind::Str), ("N", Kind::Str), ("url", Kind::Str)]
            .iter()
            .map(|(n, k)| (n.to_string(), *k))
            .collect();
    cols.extend(genres.into_iter().map(|g| (g, Kind::Int)));
    read_delimited(
        path,
        &ReadOptions { delimiter: b'|', header: false, schema: Some(cols), encoding: Encoding::Latin1 },
    )
}

/// `u.user`: userId, age, gender, occupation, zip (text: some zip codes have letters).
pub fn read_users(path: &Path) -> Result<Table> {
    let cols =
        [(USER, Kind::Int), ("age", Kind::Int), ("gender", Kind::Str), ("occupation", Kind::Str), ("zip", Kind::Str)];
    read_delimited(path, &ReadOptions { delimiter: b'|', header: false, schema: schema(&cols), ..Default::default() })
}

/// ml-latest `ratings.csv`: header `userId,movieId,rating,timestamp`, half-star ratings.
pub fn read_latest_ratings(path: &Path) -> Result<Table> {
    let cols = [(USER, Kind::Int), (ITEM, Kind::Int), (RATING, Kind::Float), ("timestamp", Kind::Int)];
    read_delimited(path, &ReadOptions { schema: schema(&cols), ..Default::default() })
}

/// ml-latest `movies.csv`: header `movieId,title,genres` (genres joined by `|`).
pub fn read_latest_movies(path: &Path) -> Result<Table> {
    let cols = [(ITEM, Kind::Int), (TITLE, Kind::Str), ("genres", Kind::Str)];
    read_delimited(path, &ReadOptions { schema: schema(&cols), ..Default::default() })
}

/// The lesson's two tables from an `ml-100k` folder: `ratings` and `ratings` merged with titles.
pub struct MovieLens100k {
    /// `u.data` as read.
    pub ratings: Table,
    /// `u.item` as read.
    pub movies: Table,
    /// The two files and their SHA-256, for provenance.
    pub sources: Vec<Source>,
}

impl MovieLens100k {
    /// Reads `u.data` and `u.item` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let (data, item) = (dir.join("u.data"), dir.join("u.item"));
        Ok(MovieLens100k {
            ratings: read_ratings(&data)?,
            movies: read_movies(&item)?,
            sources: vec![Source::of(&data)?, Source::of(&item)?],
        })
    }

    /// `ratings.merge(movies[[movieId, title]])`, in the row order the lesson shows (pandas 1.x).
    pub fn rating_movie(&self) -> Result<Table> {
        self.ratings.merge(&self.movies.select(&[ITEM, TITLE])?, ITEM)
    }

    /// Writes [`rating_movie`](Self::rating_movie)'s split to `out/train.csv` and `out/valid.csv`
    /// (so other tools, fastai included, train on the same rows); returns the row counts.
    pub fn write_split(&self, valid_pct: f64, seed: u64, method: SplitMethod, out: &Path) -> Result<(usize, usize)> {
        let rating_movie = self.rating_movie()?;
        let split = random_split(rating_movie.len(), valid_pct, seed, method)?;
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        rating_movie.take(&split.train).write_csv(&out.join("train.csv"))?;
        rating_movie.take(&split.valid).write_csv(&out.join("valid.csv"))?;
        Ok((split.train.len(), split.valid.len()))
    }
}
