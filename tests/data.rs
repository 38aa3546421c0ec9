//! Readers, tables, vocabularies and splits.
mod common;

use std::fs;

use fastcollab::data::movielens::{read_movies, read_ratings, read_users};
use fastcollab::{
    random_split, read_delimited, CollabConfig, CollabDataBunch, Column, Error, Kind, ReadOptions, SplitMethod, Table,
    Value,
};

fn table(names: &[&str], columns: Vec<Column>) -> Table {
    Table::new(names.iter().map(|s| s.to_string()).collect(), columns).unwrap()
}

#[test]
fn malformed_ratings_name_file_line_and_field() {
    let dir = common::temp_dir("bad-ratings");
    let path = dir.join("u.data");
    fs::write(&path, "1\t2\t3\t100\n4\t5\tfive\t200\n").unwrap();
    let err = read_ratings(&path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Parse { line: 2, ref field, .. } if field == "rating"), "{msg}");
    assert!(msg.contains("u.data:2") && msg.contains("\"five\""), "{msg}");

    fs::write(&path, "1\t2\t3\t100\n1\t2\t3\n").unwrap();
    let msg = read_ratings(&path).unwrap_err().to_string();
    assert!(msg.contains("u.data:2") && msg.contains("expected 4 fields, found 3"), "{msg}");
}

#[test]
fn utf8_errors_point_at_latin1() {
    let dir = common::temp_dir("latin1");
    let path = dir.join("movies.csv");
    fs::write(&path, b"movieId,title\n1,ok\n2,Mis\xe9rables\n").unwrap();
    let msg = read_delimited(&path, &ReadOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("movies.csv:3") && msg.contains("latin-1"), "{msg}");
}

#[test]
fn inferred_types_and_header() {
    let dir = common::temp_dir("infer");
    let path = dir.join("r.csv");
    fs::write(&path, "user,item,rating\n1,a,4.5\n2,b,3\n").unwrap();
    let t = read_delimited(&path, &ReadOptions::default()).unwrap();
    assert_eq!(t.column("user").unwrap(), &Column::Int(vec![1, 2]));
    assert_eq!(t.column("item").unwrap(), &Column::Str(vec!["a".into(), "b".into()]));
    assert_eq!(t.column("rating").unwrap(), &Column::Float(vec![4.5, 3.0]));
    let schema = Some(vec![("u".to_string(), Kind::Int), ("i".into(), Kind::Str), ("r".into(), Kind::Float)]);
    let t = read_delimited(&path, &ReadOptions { schema, ..Default::default() }).unwrap();
    assert_eq!(t.names(), ["u", "i", "r"]);
}

#[test]
fn merge_groups_by_key_in_first_appearance_order() {
    let ratings =
        table(&["user", "movie"], vec![Column::Int(vec![1, 2, 3, 4, 5]), Column::Int(vec![20, 10, 20, 30, 10])]);
    let movies = table(&["movie", "title"], vec![Column::Int(vec![10, 20]), Column::Str(vec!["A".into(), "B".into()])]);
    let m = ratings.merge(&movies, "movie").unwrap();
    assert_eq!(m.column("user").unwrap(), &Column::Int(vec![1, 3, 2, 5]));
    assert_eq!(m.column("title").unwrap(), &Column::Str(vec!["B".into(), "B".into(), "A".into(), "A".into()]));
    let stats = m.group_stats("title", "user").unwrap();
    assert_eq!((stats[0].key.clone(), stats[0].count, stats[0].mean), (Value::Str("A".into()), 2, 3.5));
    assert!(ratings.merge(&movies, "nope").unwrap_err().to_string().contains("no column \"nope\""));
}

#[test]
fn vocab_is_sorted_training_values_with_na_first() {
    let t = table(
        &["user", "item", "rating"],
        vec![
            Column::Int(vec![10, 2, 10, 7, 2, 99]),
            Column::Str(vec!["b".into(), "a".into(), "c".into(), "a".into(), "b".into(), "zz".into()]),
            Column::Int(vec![1, 2, 3, 4, 5, 1]),
        ],
    );
    let (train, valid) = (vec![0, 1, 2, 3, 4], vec![5]);
    let split_db =
        |tr: &Table, va: &Table| CollabDataBunch::from_tables(tr, va, &CollabConfig { bs: 2, ..Default::default() });
    let db = split_db(&t.take(&train), &t.take(&valid)).unwrap();
    assert_eq!(db.user_vocab.names(), ["#na#", "2", "7", "10"]);
    assert_eq!(db.item_vocab.names(), ["#na#", "a", "b", "c"]);
    assert_eq!(db.train.users, vec![3, 1, 3, 2, 1]);
    assert_eq!((db.valid.users[0], db.valid.items[0]), (0, 0), "unseen values map to #na#");
    assert_eq!(db.n_unseen_valid(), 1);
    assert_eq!(db.user_vocab.get("10"), Some(3));
    assert_eq!(db.item_vocab.closest("A", 1), vec!["a".to_string()]);
}

#[test]
fn split_is_deterministic_and_fastai_shaped() {
    for method in [SplitMethod::FastaiV1, SplitMethod::Seeded] {
        let a = random_split(1000, 0.1, 7, method).unwrap();
        assert_eq!(a, random_split(1000, 0.1, 7, method).unwrap());
        assert_ne!(a, random_split(1000, 0.1, 8, method).unwrap());
        assert_eq!((a.valid.len(), a.train.len()), (100, 900));
        assert!(a.train.windows(2).all(|w| w[0] < w[1]), "train rows ascending");
        let mut all: Vec<usize> = a.train.iter().chain(&a.valid).copied().collect();
        all.sort();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }
    assert_eq!(random_split(10, 0.15, 1, SplitMethod::Seeded).unwrap().valid.len(), 1, "int() truncates");
    assert!(random_split(10, 1.0, 1, SplitMethod::Seeded).is_err());
}

#[test]
fn ml100k_files_read_as_the_lesson_shows() {
    let Some(dir) = common::ml100k() else { return };
    let ratings = read_ratings(&dir.join("u.data")).unwrap();
    assert_eq!(ratings.len(), 100_000);
    assert_eq!(
        ratings.head(1).to_string().lines().nth(1).unwrap().split_whitespace().collect::<Vec<_>>(),
        ["0", "196", "242", "3", "881250949"]
    );
    let movies = read_movies(&dir.join("u.item")).unwrap();
    assert_eq!((movies.len(), movies.names().len()), (1682, 24));
    assert_eq!(movies.names()[5..7], ["unknown", "Action"]);
    let Column::Str(titles) = movies.column("title").unwrap() else { panic!("titles are text") };
    assert!(titles.iter().any(|t| t == "Misérables, Les (1995)"), "latin-1 decoded");
    let users = read_users(&dir.join("u.user")).unwrap();
    assert!(matches!(users.column("zip").unwrap(), Column::Str(z) if z.iter().any(|z| z == "T8H1N")));
}

#[test]
fn streaming_loader_matches_the_table_path() {
    use fastcollab::data::movielens::read_latest_ratings;
    use fastcollab::data::stream::load_ratings_csv;
    let dir = common::temp_dir("stream");
    let path = dir.join("ratings.csv");
    let mut csv = String::from("userId,movieId,rating,timestamp\n");
    for k in 0..500u32 {
        csv += &format!("{},{},{},{}\n", 1 + k * 7 % 37, 100 + k * 13 % 91, 0.5 + (k % 10) as f32 / 2.0, k);
    }
    fs::write(&path, &csv).unwrap();
    let cfg = CollabConfig { bs: 16, ..Default::default() };
    let streamed = load_ratings_csv(&path, &cfg).unwrap();
    let table = CollabDataBunch::from_df(&read_latest_ratings(&path).unwrap(), &cfg).unwrap();
    assert_eq!(streamed.train, table.train);
    assert_eq!(streamed.valid, table.valid);
    assert_eq!(streamed.user_vocab.names(), table.user_vocab.names());
    assert_eq!(streamed.item_vocab.names(), table.item_vocab.names());

    // Negative ids are numbers on both paths; a word among numbers is refused by line and field.
    fs::write(&path, "userId,movieId,rating,timestamp\n2,1,4.5,7\n-4,3,5,8\n9,3,2,9\n").unwrap();
    let (streamed_neg, table_neg) = (load_ratings_csv(&path, &cfg).unwrap(), read_latest_ratings(&path).unwrap());
    let table_neg = CollabDataBunch::from_df(&table_neg, &cfg).unwrap();
    assert_eq!(streamed_neg.user_vocab.names(), ["#na#", "-4", "2", "9"]);
    assert_eq!(streamed_neg.user_vocab.names(), table_neg.user_vocab.names());
    fs::write(&path, "movieId,userId,rating\n1,2,4.5\n3,x4,5\n").unwrap();
    let msg = load_ratings_csv(&path, &cfg).unwrap_err().to_string();
    assert!(msg.contains("ratings.csv:3: field \"userId\": \"x4\" is not a whole number"), "{msg}");
    // Tabs, semicolons or vertical bars where the header has no comma.
    for sep in ["\t", ";", "|"] {
        fs::write(&path, csv.replace(',', sep)).unwrap();
        let data = load_ratings_csv(&path, &cfg).unwrap();
        assert_eq!((data.train, data.valid), (streamed.train.clone(), streamed.valid.clone()), "{sep:?}");
    }

    // Without userId, movieId or rating in the header: the column in that position (fastai's
    // from_df takes the first three); named columns wherever they are.
    fs::write(&path, "user,movieId,rating\n1,2,4.5\n").unwrap();
    assert_eq!(load_ratings_csv(&path, &cfg).unwrap().names, ["user", "movieId", "rating"]);
    fs::write(&path, "when,item,who,stars\n9,2,1,4.5\n").unwrap();
    let name = |n: &str| Some(n.to_string());
    let named =
        CollabConfig { user_name: name("who"), item_name: name("item"), rating_name: name("stars"), ..cfg.clone() };
    assert_eq!(load_ratings_csv(&path, &named).unwrap().names, ["who", "item", "stars"]);
    let missing = CollabConfig { user_name: name("nobody"), ..cfg.clone() };
    let msg = load_ratings_csv(&path, &missing).unwrap_err().to_string();
    assert!(msg.contains("ratings.csv:1: field \"nobody\": no such column"), "{msg}");
    // Users from "item" would leave the items its position: three different columns are needed.
    let clash = CollabConfig { user_name: name("item"), ..cfg.clone() };
    let msg = load_ratings_csv(&path, &clash).unwrap_err().to_string();
    assert!(msg.contains("would all come from columns [\"item\", \"item\", \"who\"]"), "{msg}");
}

/// Ids need not be numbers: a column whose first id is text is read as text, numbers and all,
/// sorted as strings in its vocabulary (as pandas' object columns are), `#na#` first; an id only the
/// validation rows have maps to `#na#`. A numeric column stays numeric (sorted by value) and a text
/// id later in it is an error naming the line.
#[test]
fn ratings_csv_ids_may_be_text() {
    use fastcollab::data::stream::load_ratings_csv;
    let dir = common::temp_dir("text-ids");
    let path = dir.join("ratings.csv");
    let names = ["alice", "bob", "Carol", "10", "9", "dave smith"];
    let items = ["The Matrix", "Alien", "item-7", "42"];
    let mut csv = String::from("userId,movieId,rating\n");
    for k in 0..400 {
        csv += &format!("{},\"{}\",{}\n", names[k % 6], items[k * 7 % 4], 1 + k % 5);
    }
    fs::write(&path, &csv).unwrap();
    let data = load_ratings_csv(&path, &CollabConfig { bs: 16, valid_pct: 0.2, ..Default::default() }).unwrap();
    assert_eq!(data.user_vocab.names(), ["#na#", "10", "9", "Carol", "alice", "bob", "dave smith"]);
    assert_eq!(data.item_vocab.names(), ["#na#", "42", "Alien", "The Matrix", "item-7"]);
    assert!(!data.user_vocab.is_numeric());
    // Every rating's row names its own id.
    let rows = data.train.users.iter().zip(&data.train.items);
    let lines: Vec<(&str, &str)> = csv.lines().skip(1).map(|l| (l.split(',').next().unwrap(), l)).collect();
    for (u, i) in rows {
        let (user, item) = (&data.user_vocab.names()[*u as usize], &data.item_vocab.names()[*i as usize]);
        assert!(lines.iter().any(|(n, l)| n == user && l.contains(&format!("\"{item}\""))), "{user} {item}");
    }
    // An id that only validation rows have is #na# (a seed whose split puts erin's one rating there).
    csv += "erin,Alien,4\n";
    fs::write(&path, &csv).unwrap();
    let held_out = (0..50)
        .map(|seed| load_ratings_csv(&path, &CollabConfig { valid_pct: 0.2, seed, ..Default::default() }).unwrap())
        .find(|d| !d.user_vocab.names().iter().any(|n| n == "erin"))
        .expect("some split holds erin out");
    assert_eq!(held_out.valid.users.iter().filter(|&&u| u == 0).count(), 1);
    assert!(held_out.train.users.iter().all(|&u| u != 0));

    fs::write(&path, "userId,movieId,rating\n1,2,4.5\nu3,2,5\n").unwrap();
    let msg = load_ratings_csv(&path, &CollabConfig::default()).unwrap_err().to_string();
    assert!(msg.contains("ratings.csv:3: field \"userId\": \"u3\" is not a whole number"), "{msg}");
    fs::write(&path, "userId,movieId,rating\nu1,2,4.5\n#na#,2,5\n").unwrap();
    let msg = load_ratings_csv(&path, &CollabConfig::default()).unwrap_err().to_string();
    assert!(msg.contains("ratings.csv:3: field \"userId\": \"#na#\" names the vocabulary's row"), "{msg}");
    fs::write(&path, "userId,movieId,rating\nu1,2,4.5\n ,2,5\n").unwrap();
    let msg = load_ratings_csv(&path, &CollabConfig::default()).unwrap_err().to_string();
    assert!(msg.contains("ratings.csv:3: field \"userId\": empty id"), "{msg}");
}

/// A split of one's own: the training file's rows train and the validation file's validate, in
/// file order; the vocabularies hold the training ids only (an id only the validation file has is
/// `#na#`), and the validation file's ids must be of the training file's kind.
#[test]
fn ratings_csv_with_a_validation_file() {
    use fastcollab::data::stream::load_train_valid_csv;
    let dir = common::temp_dir("valid-file");
    let (train, valid) = (dir.join("train.csv"), dir.join("valid.tsv"));
    fs::write(&train, "userId,movieId,rating,timestamp\n3,10,4,1\n1,20,2,2\n3,20,5,3\n2,10,1,4\n").unwrap();
    // Its own separator; a user and an item (within the training ids' span) the training file lacks.
    fs::write(&valid, "userId\tmovieId\trating\n1\t10\t3\n9\t20\t4.5\n2\t15\t2\n").unwrap();
    let cfg = CollabConfig { bs: 2, valid_pct: 0.5, ..Default::default() };
    let data = load_train_valid_csv(&train, &valid, &cfg).unwrap();
    assert_eq!(data.user_vocab.names(), ["#na#", "1", "2", "3"]);
    assert_eq!(data.item_vocab.names(), ["#na#", "10", "20"]);
    assert_eq!((data.train.users.clone(), data.train.items.clone()), (vec![3, 1, 3, 2], vec![1, 2, 2, 1]));
    assert_eq!(data.train.ratings, [4.0, 2.0, 5.0, 1.0]);
    assert_eq!((data.valid.users.clone(), data.valid.items.clone()), (vec![1, 0, 2], vec![1, 2, 0]));
    assert_eq!(data.valid.ratings, [3.0, 4.5, 2.0]);
    let p = &data.provenance;
    assert_eq!((p.split.as_str(), p.valid_pct, p.sources.len()), ("given", 0.0, 2));
    fs::write(&valid, "userId,movieId,rating\n1,10,3\nbob,20,4\n").unwrap();
    let msg = load_train_valid_csv(&train, &valid, &cfg).unwrap_err().to_string();
    assert!(msg.contains("valid.tsv:3: field \"userId\": \"bob\" is not a whole number"), "{msg}");
    assert!(msg.contains("the column's first id, in ") && msg.contains("train.csv, is one"), "{msg}");
}

/// Numeric ids beyond `u32` (database keys) or negative, anywhere in the column: read as numbers,
/// sorted by value, as pandas' int64 columns are (the first ids fit `u32`, later ones do not).
#[test]
fn ratings_csv_numeric_ids_may_be_negative_or_wide() {
    use fastcollab::data::stream::load_ratings_csv;
    let dir = common::temp_dir("wide-ids");
    let path = dir.join("ratings.csv");
    let users = ["7", "3", "-12", "9000000000", "-5000000000", "0"];
    let mut csv = String::from("userId,movieId,rating\n");
    for k in 0..300 {
        csv += &format!("{},{},{}\n", users[k % 6], [5, -1, 4294967296i64][k % 3], 1 + k % 5);
    }
    fs::write(&path, &csv).unwrap();
    let data = load_ratings_csv(&path, &CollabConfig { bs: 16, valid_pct: 0.1, ..Default::default() }).unwrap();
    assert_eq!(data.user_vocab.names(), ["#na#", "-5000000000", "-12", "0", "3", "7", "9000000000"]);
    assert_eq!(data.item_vocab.names(), ["#na#", "-1", "5", "4294967296"]);
    assert!(data.user_vocab.is_numeric() && data.user_vocab.get("-012") == Some(2));
    // Every rating keeps its own ids.
    let lines: Vec<&str> = csv.lines().skip(1).collect();
    for (u, i) in data.train.users.iter().zip(&data.train.items) {
        let pair = format!("{},{},", data.user_vocab.name(*u as usize), data.item_vocab.name(*i as usize));
        assert!(lines.iter().any(|l| l.starts_with(&pair)), "{pair}");
    }
    fs::write(&path, "userId,movieId,rating\n1,2,4.5\n-3,2,5\n99999999999999999999,2,5\n").unwrap();
    let msg = load_ratings_csv(&path, &CollabConfig::default()).unwrap_err().to_string();
    assert!(msg.contains("ratings.csv:4: field \"userId\": \"99999999999999999999\" is not a whole number"), "{msg}");
}

/// A few hundred mutated ratings files (bytes flipped, inserted, deleted, truncated): every one
/// loads or fails with an error, never a panic (a hang would stop the suite).
#[test]
fn mutation_fuzz_of_the_ratings_readers_never_panics() {
    use rand::{Rng, SeedableRng};
    let dir = common::temp_dir("fuzz");
    let mut good = String::from("userId,movieId,rating,timestamp\n");
    let mut tab = String::new();
    for k in 0..200 {
        good += &format!("{},{},{}.5,{}\n", k % 17 + 1, k % 23 + 1, k % 5, 1000 + k);
        tab += &format!("{}\t{}\t{}\t{}\n", k % 17 + 1, k % 23 + 1, k % 5 + 1, 1000 + k);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let (mut ok, mut err) = (0, 0);
    for case in 0..400 {
        let (base, csv) = if case % 2 == 0 { (good.as_bytes(), true) } else { (tab.as_bytes(), false) };
        let mut bytes = base.to_vec();
        for _ in 0..rng.gen_range(1..6) {
            let at = rng.gen_range(0..bytes.len().max(1));
            match rng.gen_range(0..5) {
                0 => bytes[at] = rng.gen(),
                1 => {
                    let pool = b"\n\t,\"\xff\xe9-0e99x";
                    bytes.insert(at, pool[rng.gen_range(0..pool.len())]);
                }
                2 => {
                    bytes.remove(at);
                }
                3 => bytes.truncate(at),
                _ => bytes[at] = b"\n,\"\t"[rng.gen_range(0..4)],
            }
            if bytes.is_empty() {
                break;
            }
        }
        let path = dir.join(if csv { "ratings.csv" } else { "u.data" });
        fs::write(&path, &bytes).unwrap();
        let result = if csv {
            fastcollab::data::stream::load_ratings_csv(&path, &CollabConfig { valid_pct: 0.2, ..Default::default() })
                .map(|_| ())
        } else {
            read_ratings(&path).map(|_| ())
        };
        match result {
            Ok(()) => ok += 1,
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(path.file_name().unwrap().to_str().unwrap()) || msg.contains("configuration"),
                    "{msg}"
                );
                err += 1;
            }
        }
    }
    assert!(ok > 10 && err > 100, "{ok} loaded, {err} refused");
}
