//! The data layer: downloading, reading, tables, vocabularies, splits and the data bunch.
pub mod databunch;
pub mod download;
pub mod movielens;
pub mod provenance;
pub mod read;
pub mod split;
pub mod stream;
pub mod synthetic;
pub mod table;
pub mod titles;
pub mod vocab;
