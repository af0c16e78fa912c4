//! Tables as people have them: CSV read through the `csv` crate ([`read_csv`]), columns typed
//! and missing cells found ([`TableSpec::layout`]), statistics fitted on training rows only
//! ([`Schema::fit`]) and rows encoded as numbers ([`Schema::encode_rows`]). The fitted
//! [`Schema`] travels in checkpoints, so raw rows of strings can be predicted later.
//!
//! ```
//! use fukai::data::{parse_csv, Schema, TableSpec};
//! let csv = "species,island,mass\nAdelie,Dream,3700\nGentoo,Biscoe,NA\nAdelie,Biscoe,3500\n";
//! let raw = parse_csv(csv.as_bytes(), "penguins", &Default::default())?;
//! let spec = TableSpec { label: Some(fukai::data::ColumnRef::Name("species".into())), ..Default::default() };
//! let layout = spec.layout(&raw)?;
//! assert_eq!(layout.class_names, ["Adelie", "Gentoo"]);
//! let all: Vec<usize> = (0..layout.rows.len()).collect();
//! let schema = Schema::fit(&spec, &raw, &layout, &all)?;
//! // mass (standardized, the missing one imputed with the mean), then island one-hot.
//! let x = schema.encode_rows(&raw, &[1])?;
//! assert_eq!(x, [0.0, 1.0, 0.0]);
//! # Ok::<(), fukai::Error>(())
//! ```

mod read;
mod schema;

pub use read::MAX_COLUMNS;
pub use read::{parse_csv, read_csv, CsvOptions, RawTable};
pub use schema::{
    mean_std, Column, ColumnKind, ColumnRef, Encoding, Impute, Layout, Schema, TableSpec, Target,
    DEFAULT_MISSING, MAX_CATEGORIES, MISSING_CATEGORY,
};
