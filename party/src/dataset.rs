//! A party's local CSV datasets and the schema its config declares for them.
//!
//! A party operator declares each dataset in the party's TOML config as a
//! [`DatasetConfig`]: a name, a CSV path, an id column and the typed columns
//! the party agrees to compute on. Jobs then read only what they need:
//!
//! ```text
//! DatasetConfig ──validate──▶ load_columns(cfg, path, ["age", "region"]) ──▶ Table (columnar)
//!                                                                              │
//!                      filter_mask(table, cfg, "region", Equals("north")) ◀────┘
//!                                          │
//!                                          ▼
//!                      select(table.numeric("age"), &mask) ──▶ Vec<f64> for the MPC layer
//! ```
//!
//! [`load_columns`] streams the file record by record and keeps only the
//! requested columns, so a 100 MB file with many columns costs memory only
//! for the columns a job uses. `int` columns are stored as `f64`, like `float`
//! columns, which is why their values must lie within ±2^53.
//!
//! # Confidentiality of errors
//!
//! A [`DatasetError`] may be shown to other organisations taking part in a
//! job. Errors about the data therefore name the file (by its file name, not
//! its full local path), the dataset, the row, the column and the expected
//! type — never the content of a cell.
//!
//! This module does not parse TOML, resolve which datasets a job may use, or
//! apply any privacy policy; it only reads and filters local data.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use csv::{ByteRecord, ReaderBuilder};
use serde::{Deserialize, Serialize};

/// Largest magnitude of an `int` cell: every integer up to 2^53 is exact in an `f64`.
const MAX_EXACT_INT: u64 = 1 << 53;

/// Cap on the number of rows preallocated from the file-size estimate; bigger
/// tables grow their columns as usual beyond it.
const MAX_PREALLOCATED_ROWS: usize = 1 << 22;

/// Read buffer for CSV files (the `csv` default is 8 KiB).
const READ_BUFFER_BYTES: usize = 1 << 16;

/// The type of a declared column, spelled `int`, `float` or `string` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Whole numbers, stored as `f64`; cells must parse as `i64` and lie within ±2^53.
    Int,
    /// Finite floating-point numbers; `NaN` and infinities are rejected.
    Float,
    /// UTF-8 text, kept verbatim (not trimmed).
    String,
}

impl ColumnType {
    /// Whether the column holds numbers (`int` or `float`).
    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Int | Self::Float)
    }

    /// The type with its indefinite article, for messages: "an int", "a float", "a string".
    fn with_article(self) -> &'static str {
        match self {
            Self::Int => "an int",
            Self::Float => "a float",
            Self::String => "a string",
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Int => "int",
            Self::Float => "float",
            Self::String => "string",
        })
    }
}

/// One declared column: its header name and its type.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDecl {
    /// The column's name in the CSV header row.
    pub name: String,
    /// The column's type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
}

/// A dataset as declared in a party's config (`[[datasets]]`).
///
/// The CSV file may have more columns than are declared; only declared columns
/// can be loaded, and every declared column must be present in the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// The name jobs use to refer to the dataset.
    pub name: String,
    /// The CSV file; a relative path is relative to the config file's directory
    /// (see [`DatasetConfig::resolve_path`]).
    pub path: PathBuf,
    /// The declared column that identifies a record.
    pub id_column: String,
    /// The declared columns, in any order.
    pub columns: Vec<ColumnDecl>,
}

impl DatasetConfig {
    /// Checks the declaration itself: a non-empty name and path, at least one
    /// column, column names that are non-empty, unique and not padded with
    /// whitespace, and an `id_column` that is one of the declared columns.
    ///
    /// # Errors
    ///
    /// [`DatasetError::InvalidConfig`], saying which check failed.
    pub fn validate(&self) -> Result<(), DatasetError> {
        let invalid = |reason: String| {
            Err(DatasetError::InvalidConfig {
                dataset: self.name.clone(),
                reason,
            })
        };
        if self.name.trim().is_empty() {
            return invalid("the dataset name is empty".to_owned());
        }
        if self.path.as_os_str().is_empty() {
            return invalid("the path is empty".to_owned());
        }
        if self.columns.is_empty() {
            return invalid("no columns are declared".to_owned());
        }
        let mut seen = HashSet::with_capacity(self.columns.len());
        for decl in &self.columns {
            if decl.name.trim().is_empty() {
                return invalid("a column name is empty".to_owned());
            }
            if decl.name.trim() != decl.name {
                return invalid(format!(
                    "column name \"{}\" has leading or trailing whitespace",
                    decl.name
                ));
            }
            if !seen.insert(decl.name.as_str()) {
                return invalid(format!("column \"{}\" is declared twice", decl.name));
            }
        }
        if self.column(&self.id_column).is_none() {
            return invalid(format!(
                "id_column \"{}\" is not a declared column",
                self.id_column
            ));
        }
        Ok(())
    }

    /// The declaration of the column called `name`, if there is one.
    pub fn column(&self, name: &str) -> Option<&ColumnDecl> {
        self.columns.iter().find(|decl| decl.name == name)
    }

    /// The file to read: `path` itself if it is absolute, otherwise `path`
    /// relative to `base_dir`, the directory of the config file.
    pub fn resolve_path(&self, base_dir: &Path) -> PathBuf {
        if self.path.is_absolute() {
            self.path.clone()
        } else {
            base_dir.join(&self.path)
        }
    }

    fn undeclared(&self, column: &str) -> DatasetError {
        DatasetError::UndeclaredColumn {
            dataset: self.name.clone(),
            column: column.to_owned(),
        }
    }
}

/// A condition on one column, evaluated row by row by [`filter_mask`].
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// The cell equals the value: exactly for a string column, numerically
    /// (after parsing the value) for a numeric column.
    Equals(String),
    /// `min <= cell <= max` on a numeric column; a missing bound is unbounded.
    Range {
        /// Inclusive lower bound.
        min: Option<f64>,
        /// Inclusive upper bound.
        max: Option<f64>,
    },
}

/// Columns loaded from a dataset by [`load_columns`]: only the requested ones,
/// each stored contiguously.
///
/// `Debug` shows the shape (row count, column names and types), never the data.
#[derive(Clone)]
pub struct Table {
    rows: usize,
    columns: Vec<Column>,
}

#[derive(Clone)]
struct Column {
    name: String,
    ty: ColumnType,
    data: ColumnData,
}

#[derive(Clone)]
enum ColumnData {
    Numeric(Vec<f64>),
    Text(Vec<String>),
}

impl Table {
    /// Number of data rows (the header row is not counted).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The values of an `int` or `float` column, or `None` if the table has no
    /// such numeric column.
    pub fn numeric(&self, name: &str) -> Option<&[f64]> {
        match &self.get(name)?.data {
            ColumnData::Numeric(values) => Some(values),
            ColumnData::Text(_) => None,
        }
    }

    /// The cells of a `string` column, or `None` if the table has no such text column.
    pub fn text(&self, name: &str) -> Option<&[String]> {
        match &self.get(name)?.data {
            ColumnData::Text(values) => Some(values),
            ColumnData::Numeric(_) => None,
        }
    }

    /// The declared type of a loaded column, or `None` if it was not loaded.
    pub fn column_type(&self, name: &str) -> Option<ColumnType> {
        self.get(name).map(|column| column.ty)
    }

    /// The names of the loaded columns, in the order they were requested.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|column| column.name.as_str())
    }

    fn get(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|column| column.name == name)
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Shape<'a>(&'a [Column]);
        impl fmt::Debug for Shape<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|column| (&column.name, column.ty)))
                    .finish()
            }
        }
        f.debug_struct("Table")
            .field("rows", &self.rows)
            .field("columns", &Shape(&self.columns))
            .finish_non_exhaustive()
    }
}

/// Reads the `wanted` columns of the dataset `cfg` from the CSV file at `path`
/// (normally `cfg.resolve_path(config_dir)`).
///
/// The file must start with a header row that contains every declared column
/// (header names are matched after trimming whitespace; undeclared extra
/// columns are ignored). Each of `wanted` must be declared; repeated names are
/// loaded once. Records are streamed and only the wanted cells are kept.
/// Numeric cells are parsed after trimming whitespace; string cells are kept
/// verbatim. Blank lines are skipped and not counted as rows.
///
/// # Errors
///
/// [`DatasetError::InvalidConfig`] if `cfg` does not [validate](DatasetConfig::validate),
/// [`DatasetError::UndeclaredColumn`] for a wanted column that `cfg` does not declare,
/// [`DatasetError::Io`] if the file cannot be read,
/// [`DatasetError::MissingHeader`], [`DatasetError::MissingColumn`] or
/// [`DatasetError::DuplicateColumn`] for a bad header row,
/// [`DatasetError::Csv`] for a ragged or malformed record, and
/// [`DatasetError::BadCell`] or [`DatasetError::IntOutOfRange`] for a wanted
/// cell that does not hold its column's type.
pub fn load_columns(
    cfg: &DatasetConfig,
    path: &Path,
    wanted: &[&str],
) -> Result<Table, DatasetError> {
    let wanted_decls = wanted_decls(cfg, wanted)?;

    let file = File::open(path).map_err(|source| DatasetError::Io {
        path: path.to_owned(),
        source,
    })?;
    // Only a capacity hint: a file whose size cannot be read gets no preallocation.
    let file_len = file.metadata().map_or(0, |meta| meta.len());
    read_columns(cfg, file, file_len, path, wanted_decls)
}

/// Reads `wanted` columns of the CSV `file` (`file_len` bytes long, a capacity hint), named
/// `path` in errors; as [`load_columns`], which opens the file. Also for the fuzz target.
///
/// # Errors
/// As [`load_columns`].
pub fn read_csv(
    cfg: &DatasetConfig,
    file: impl Read,
    file_len: u64,
    path: &Path,
    wanted: &[&str],
) -> Result<Table, DatasetError> {
    let wanted_decls = wanted_decls(cfg, wanted)?;
    read_columns(cfg, file, file_len, path, wanted_decls)
}

/// Validates `cfg` and finds the declaration of each of `wanted` (once each).
fn wanted_decls<'c>(
    cfg: &'c DatasetConfig,
    wanted: &[&str],
) -> Result<Vec<&'c ColumnDecl>, DatasetError> {
    cfg.validate()?;
    let mut decls: Vec<&ColumnDecl> = Vec::with_capacity(wanted.len());
    for &name in wanted {
        let decl = cfg.column(name).ok_or_else(|| cfg.undeclared(name))?;
        if !decls.iter().any(|seen| seen.name == decl.name) {
            decls.push(decl);
        }
    }
    Ok(decls)
}

fn read_columns(
    cfg: &DatasetConfig,
    file: impl Read,
    file_len: u64,
    path: &Path,
    wanted_decls: Vec<&ColumnDecl>,
) -> Result<Table, DatasetError> {
    let mut reader = ReaderBuilder::new()
        .has_headers(true)
        .buffer_capacity(READ_BUFFER_BYTES)
        .from_reader(file);

    let header = reader
        .byte_headers()
        .map_err(|err| csv_error(path, 1, err))?;
    if header.iter().all(|field| field.trim_ascii().is_empty()) {
        return Err(DatasetError::MissingHeader {
            path: path.to_owned(),
        });
    }
    // Every declared column must be in the header, wanted or not.
    for decl in &cfg.columns {
        header_index(path, header, &decl.name)?;
    }
    let mut builders = Vec::with_capacity(wanted_decls.len());
    for decl in wanted_decls {
        let index = header_index(path, header, &decl.name)?;
        builders.push(ColumnBuilder::new(decl, index));
    }

    let data_start = reader.position().byte();
    let mut record = ByteRecord::new();
    let mut row: u64 = 0;
    loop {
        let more = reader
            .read_byte_record(&mut record)
            .map_err(|err| csv_error(path, row + 2, err))?;
        if !more {
            break;
        }
        row += 1;
        if row == 1 {
            let rows = estimate_rows(file_len, data_start, reader.position().byte());
            for builder in &mut builders {
                builder.reserve(rows);
            }
        }
        let line = row + 1;
        for builder in &mut builders {
            // The reader rejects records whose length differs from the header's,
            // so every header index is in bounds; stay defensive all the same.
            let cell = record.get(builder.index).ok_or_else(|| DatasetError::Csv {
                path: path.to_owned(),
                line,
                message: "record is shorter than the header".to_owned(),
            })?;
            builder
                .push(cell)
                .map_err(|problem| problem.at(path, row, line, builder))?;
        }
    }

    Ok(Table {
        rows: usize::try_from(row).unwrap_or(usize::MAX),
        columns: builders.into_iter().map(ColumnBuilder::finish).collect(),
    })
}

/// The index of `column` in `header`, matching trimmed header names.
fn header_index(path: &Path, header: &ByteRecord, column: &str) -> Result<usize, DatasetError> {
    let mut matches = header
        .iter()
        .enumerate()
        .filter(|(_, name)| name.trim_ascii() == column.as_bytes())
        .map(|(index, _)| index);
    let index = matches.next().ok_or_else(|| DatasetError::MissingColumn {
        path: path.to_owned(),
        column: column.to_owned(),
    })?;
    if matches.next().is_some() {
        return Err(DatasetError::DuplicateColumn {
            path: path.to_owned(),
            column: column.to_owned(),
        });
    }
    Ok(index)
}

/// Rows to preallocate, extrapolated from the size of the first record.
fn estimate_rows(file_len: u64, data_start: u64, first_record_end: u64) -> usize {
    let record_bytes = first_record_end.saturating_sub(data_start).max(1);
    let remaining = file_len.saturating_sub(data_start);
    usize::try_from(remaining / record_bytes + 1)
        .unwrap_or(usize::MAX)
        .min(MAX_PREALLOCATED_ROWS)
}

/// Accumulates one wanted column while the file is streamed.
struct ColumnBuilder<'c> {
    decl: &'c ColumnDecl,
    index: usize,
    data: ColumnData,
}

/// Why a cell was rejected; turned into a [`DatasetError`] by [`CellProblem::at`].
enum CellProblem {
    Malformed,
    IntOutOfRange,
}

impl<'c> ColumnBuilder<'c> {
    fn new(decl: &'c ColumnDecl, index: usize) -> Self {
        let data = match decl.ty {
            ColumnType::Int | ColumnType::Float => ColumnData::Numeric(Vec::new()),
            ColumnType::String => ColumnData::Text(Vec::new()),
        };
        Self { decl, index, data }
    }

    fn reserve(&mut self, rows: usize) {
        match &mut self.data {
            ColumnData::Numeric(values) => values.reserve(rows),
            ColumnData::Text(values) => values.reserve(rows),
        }
    }

    fn push(&mut self, cell: &[u8]) -> Result<(), CellProblem> {
        match &mut self.data {
            ColumnData::Numeric(values) => values.push(parse_number(cell, self.decl.ty)?),
            ColumnData::Text(values) => {
                let text = std::str::from_utf8(cell).map_err(|_| CellProblem::Malformed)?;
                values.push(text.to_owned());
            }
        }
        Ok(())
    }

    fn finish(self) -> Column {
        let mut data = self.data;
        match &mut data {
            ColumnData::Numeric(values) => values.shrink_to_fit(),
            ColumnData::Text(values) => values.shrink_to_fit(),
        }
        Column {
            name: self.decl.name.clone(),
            ty: self.decl.ty,
            data,
        }
    }
}

impl CellProblem {
    fn at(self, path: &Path, row: u64, line: u64, builder: &ColumnBuilder<'_>) -> DatasetError {
        let (path, column) = (path.to_owned(), builder.decl.name.clone());
        match self {
            Self::Malformed => DatasetError::BadCell {
                path,
                row,
                line,
                column,
                expected: builder.decl.ty,
            },
            Self::IntOutOfRange => DatasetError::IntOutOfRange {
                path,
                row,
                line,
                column,
            },
        }
    }
}

/// Parses a numeric cell of type `ty` after trimming ASCII whitespace.
fn parse_number(cell: &[u8], ty: ColumnType) -> Result<f64, CellProblem> {
    let text = std::str::from_utf8(cell.trim_ascii()).map_err(|_| CellProblem::Malformed)?;
    if ty == ColumnType::Int {
        let value: i64 = text.parse().map_err(|_| CellProblem::Malformed)?;
        if value.unsigned_abs() > MAX_EXACT_INT {
            return Err(CellProblem::IntOutOfRange);
        }
        // Exact: |value| <= 2^53.
        Ok(value as f64)
    } else {
        text.parse::<f64>()
            .ok()
            .filter(|value| value.is_finite())
            .ok_or(CellProblem::Malformed)
    }
}

/// Converts a `csv` error about the record on `line` into a [`DatasetError`]
/// with our own wording, so that no text from the file can reach the message.
fn csv_error(path: &Path, line: u64, err: csv::Error) -> DatasetError {
    let message = match err.into_kind() {
        csv::ErrorKind::Io(source) => {
            return DatasetError::Io {
                path: path.to_owned(),
                source,
            };
        }
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("found {len} fields, but the header has {expected_len}"),
        _ => "malformed CSV record".to_owned(),
    };
    DatasetError::Csv {
        path: path.to_owned(),
        line,
        message,
    }
}

/// Evaluates `predicate` on `column` of `table`, one `bool` per row.
///
/// `column` must be declared in `cfg` and loaded in `table`.
///
/// # Errors
///
/// [`DatasetError::UndeclaredColumn`] or [`DatasetError::NotLoaded`] if the
/// column is unknown or was not loaded, [`DatasetError::WrongType`] for a
/// range on a string column, and [`DatasetError::BadFilterValue`] if the value
/// of an equality on a numeric column is not a finite number, or a range
/// bound is `NaN`.
pub fn filter_mask(
    table: &Table,
    cfg: &DatasetConfig,
    column: &str,
    predicate: &Predicate,
) -> Result<Vec<bool>, DatasetError> {
    let decl = cfg.column(column).ok_or_else(|| cfg.undeclared(column))?;
    let not_loaded = || DatasetError::NotLoaded {
        dataset: cfg.name.clone(),
        column: column.to_owned(),
    };
    match (decl.ty, predicate) {
        (ColumnType::String, Predicate::Equals(value)) => {
            let cells = table.text(column).ok_or_else(not_loaded)?;
            Ok(cells.iter().map(|cell| cell == value).collect())
        }
        (ColumnType::String, Predicate::Range { .. }) => Err(DatasetError::WrongType {
            column: column.to_owned(),
            expected: "a numeric column",
            found: ColumnType::String,
        }),
        (ColumnType::Int | ColumnType::Float, Predicate::Equals(value)) => {
            let target = value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|target| target.is_finite())
                .ok_or_else(|| bad_filter_value(column, value))?;
            let values = table.numeric(column).ok_or_else(not_loaded)?;
            Ok(values.iter().map(|&x| x == target).collect())
        }
        (ColumnType::Int | ColumnType::Float, &Predicate::Range { min, max }) => {
            for bound in [min, max].into_iter().flatten() {
                if bound.is_nan() {
                    return Err(bad_filter_value(column, &bound.to_string()));
                }
            }
            let bounds = min.unwrap_or(f64::NEG_INFINITY)..=max.unwrap_or(f64::INFINITY);
            let values = table.numeric(column).ok_or_else(not_loaded)?;
            Ok(values.iter().map(|x| bounds.contains(x)).collect())
        }
    }
}

fn bad_filter_value(column: &str, value: &str) -> DatasetError {
    DatasetError::BadFilterValue {
        column: column.to_owned(),
        value: value.to_owned(),
    }
}

/// The values whose mask entry is `true`, in order.
///
/// # Panics
///
/// If `values` and `mask` differ in length: a mask must come from
/// [`filter_mask`] on the table the values belong to.
pub fn select(values: &[f64], mask: &[bool]) -> Vec<f64> {
    assert_eq!(
        values.len(),
        mask.len(),
        "select: the mask must have one entry per value"
    );
    values
        .iter()
        .zip(mask)
        .filter_map(|(&value, &keep)| keep.then_some(value))
        .collect()
}

/// The file name of `path` (or the whole path if it has none), so that
/// messages about data do not reveal the party's directory layout.
fn file_name(path: &Path) -> std::ffi::os_str::Display<'_> {
    path.file_name().unwrap_or(path.as_os_str()).display()
}

/// Errors from declaring, loading or filtering datasets.
///
/// Messages about a file's content name the file by its file name; the
/// `path` field keeps the full path for local logs. No variant carries the
/// content of a cell.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// The dataset declaration is inconsistent.
    #[error("dataset \"{dataset}\" is misconfigured: {reason}")]
    InvalidConfig {
        /// The dataset's declared name.
        dataset: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The file could not be opened or read.
    #[error("cannot read {}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file has no header row.
    #[error("{} has no header row", file_name(.path))]
    MissingHeader {
        /// The file.
        path: PathBuf,
    },
    /// A declared column is absent from the file's header row.
    #[error("{} has no column \"{column}\" in its header row", file_name(.path))]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The declared column.
        column: String,
    },
    /// A declared column appears more than once in the file's header row.
    #[error("{} has column \"{column}\" more than once in its header row", file_name(.path))]
    DuplicateColumn {
        /// The file.
        path: PathBuf,
        /// The declared column.
        column: String,
    },
    /// A column was requested that the dataset does not declare.
    #[error("dataset \"{dataset}\" has no declared column \"{column}\"")]
    UndeclaredColumn {
        /// The dataset's declared name.
        dataset: String,
        /// The requested column.
        column: String,
    },
    /// A record is malformed, e.g. it has a different number of fields than the header.
    #[error("{} line {line}: {message}", file_name(.path))]
    Csv {
        /// The file.
        path: PathBuf,
        /// The record's data row + 1 (see [`DatasetError::BadCell::line`]).
        line: u64,
        /// What is wrong, in words that never quote the file.
        message: String,
    },
    /// A cell does not hold its column's type: for numeric columns it is
    /// empty, not a number, not finite or (for `int`) not a whole number;
    /// for string columns it is not UTF-8.
    #[error(
        "{} row {row} (line {line}), column \"{column}\": expected {}",
        file_name(.path),
        .expected.with_article()
    )]
    BadCell {
        /// The file.
        path: PathBuf,
        /// The 1-based data row (the header row is not counted).
        row: u64,
        /// `row + 1`, the record's line in a file without blank lines or
        /// line breaks inside quoted fields.
        line: u64,
        /// The column.
        column: String,
        /// The column's declared type.
        expected: ColumnType,
    },
    /// An `int` cell is a whole number too large to be stored exactly.
    #[error(
        "{} row {row} (line {line}), column \"{column}\": int is outside ±2^53",
        file_name(.path)
    )]
    IntOutOfRange {
        /// The file.
        path: PathBuf,
        /// The 1-based data row (the header row is not counted).
        row: u64,
        /// `row + 1` (see [`DatasetError::BadCell::line`]).
        line: u64,
        /// The column.
        column: String,
    },
    /// A declared column was used but is not loaded in the table.
    #[error("column \"{column}\" of dataset \"{dataset}\" is not loaded")]
    NotLoaded {
        /// The dataset's declared name.
        dataset: String,
        /// The column.
        column: String,
    },
    /// An operation does not apply to the column's type.
    #[error("column \"{column}\" is a {found} column, but {expected} is needed")]
    WrongType {
        /// The column.
        column: String,
        /// The kind of column the operation needs.
        expected: &'static str,
        /// The column's declared type.
        found: ColumnType,
    },
    /// A filter value for a numeric column is not a finite number. The value
    /// comes from the analyst's query, not from the data, so it is quoted.
    #[error("filter value \"{value}\" for column \"{column}\" is not a finite number")]
    BadFilterValue {
        /// The column.
        column: String,
        /// The analyst's value.
        value: String,
    },
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::fs;

    use proptest::prelude::*;
    use tempfile::TempDir;

    use super::*;

    fn claims_cfg() -> DatasetConfig {
        let column = |name: &str, ty| ColumnDecl {
            name: name.to_owned(),
            ty,
        };
        DatasetConfig {
            name: "claims".to_owned(),
            path: PathBuf::from("data/hospital_claims.csv"),
            id_column: "claim_id".to_owned(),
            columns: vec![
                column("claim_id", ColumnType::String),
                column("age", ColumnType::Int),
                column("claim_amount", ColumnType::Float),
                column("diagnosis_group", ColumnType::String),
            ],
        }
    }

    /// Writes `contents` to `hospital_claims.csv` in a fresh directory.
    fn write_csv(contents: &str) -> (TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hospital_claims.csv");
        fs::write(&path, contents).unwrap();
        (dir, path)
    }

    fn load(contents: &str, wanted: &[&str]) -> Result<Table, DatasetError> {
        let (_dir, path) = write_csv(contents);
        load_columns(&claims_cfg(), &path, wanted)
    }

    /// Loads `contents`, expects an error, and checks that neither its message
    /// nor its `Debug` form contains `secret`.
    fn load_err(contents: &str, wanted: &[&str], secret: &str) -> DatasetError {
        let err = load(contents, wanted).unwrap_err();
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(secret), "{text:?} leaks {secret:?}");
        }
        err
    }

    const ALL: &[&str] = &["claim_id", "age", "claim_amount", "diagnosis_group"];

    #[test]
    fn loads_mixed_types() {
        let csv = concat!(
            "claim_id,age,extra,claim_amount,diagnosis_group\n",
            "H-1, 42 ,x,1234.5,cardio\n",
            "H-2,-3,y, 1e3 ,\"onc, ology\"\n",
            "H-3,9007199254740992,z,0,  padded  \n",
        );
        let table = load(csv, &["claim_amount", "age", "diagnosis_group", "age"]).unwrap();
        assert_eq!(table.rows(), 3);
        assert_eq!(
            table.column_names().collect::<Vec<_>>(),
            ["claim_amount", "age", "diagnosis_group"]
        );
        assert_eq!(table.numeric("age").unwrap(), [42.0, -3.0, 2f64.powi(53)]);
        assert_eq!(
            table.numeric("claim_amount").unwrap(),
            [1234.5, 1000.0, 0.0]
        );
        assert_eq!(
            table.text("diagnosis_group").unwrap(),
            ["cardio", "onc, ology", "  padded  "]
        );
        assert_eq!(table.column_type("age"), Some(ColumnType::Int));
        assert_eq!(table.text("age"), None);
        assert_eq!(table.numeric("diagnosis_group"), None);
        assert_eq!(table.numeric("claim_id"), None, "not requested");
        assert_eq!(table.text("extra"), None, "not declared");
    }

    #[test]
    fn header_names_are_trimmed_and_blank_lines_skipped() {
        let csv = "claim_id , age,claim_amount,diagnosis_group\n\nH-1,1,2.5,x\n\n";
        let table = load(csv, &["age"]).unwrap();
        assert_eq!(table.rows(), 1);
        assert_eq!(table.numeric("age").unwrap(), [1.0]);
    }

    #[test]
    fn header_only_gives_empty_table() {
        let table = load("claim_id,age,claim_amount,diagnosis_group\n", ALL).unwrap();
        assert_eq!(table.rows(), 0);
        assert_eq!(table.numeric("age").unwrap(), [] as [f64; 0]);
    }

    #[test]
    fn no_wanted_columns_still_counts_rows() {
        let table = load("claim_id,age,claim_amount,diagnosis_group\na,1,2,b\n", &[]).unwrap();
        assert_eq!(table.rows(), 1);
        assert_eq!(table.column_names().count(), 0);
    }

    #[test]
    fn debug_shows_shape_not_data() {
        let table = load(
            "claim_id,age,claim_amount,diagnosis_group\nSECRET-ID,1,2,b\n",
            &["claim_id"],
        )
        .unwrap();
        let debug = format!("{table:?}");
        assert!(
            debug.contains("rows: 1") && debug.contains("claim_id"),
            "{debug}"
        );
        assert!(!debug.contains("SECRET"), "{debug}");
    }

    #[test]
    fn missing_file_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.csv");
        let err = load_columns(&claims_cfg(), &path, ALL).unwrap_err();
        assert!(matches!(&err, DatasetError::Io { path: p, .. } if *p == path));
        assert!(err.to_string().contains("absent.csv"), "{err}");
    }

    #[test]
    fn empty_file_has_no_header() {
        let err = load("", ALL).unwrap_err();
        assert!(matches!(err, DatasetError::MissingHeader { .. }), "{err}");
    }

    #[test]
    fn missing_declared_column() {
        let err = load("claim_id,age,diagnosis_group\nH-1,1,x\n", &["age"]).unwrap_err();
        assert!(
            matches!(&err, DatasetError::MissingColumn { column, .. } if column == "claim_amount")
        );
        assert_eq!(
            err.to_string(),
            "hospital_claims.csv has no column \"claim_amount\" in its header row"
        );
    }

    #[test]
    fn duplicate_header_column() {
        let csv = "claim_id,age,claim_amount,diagnosis_group,age\nH-1,1,2,x,3\n";
        let err = load(csv, &["claim_id"]).unwrap_err();
        assert!(matches!(&err, DatasetError::DuplicateColumn { column, .. } if column == "age"));
    }

    #[test]
    fn undeclared_wanted_column() {
        let csv = "claim_id,age,claim_amount,diagnosis_group,extra\nH-1,1,2,x,y\n";
        let err = load(csv, &["age", "extra"]).unwrap_err();
        assert!(
            matches!(&err, DatasetError::UndeclaredColumn { dataset, column }
                if dataset == "claims" && column == "extra")
        );
        assert_eq!(
            err.to_string(),
            "dataset \"claims\" has no declared column \"extra\""
        );
    }

    #[test]
    fn invalid_config_is_rejected_before_reading() {
        let mut cfg = claims_cfg();
        cfg.id_column = "patient_id".to_owned();
        let err = load_columns(&cfg, Path::new("/nonexistent.csv"), ALL).unwrap_err();
        assert!(matches!(err, DatasetError::InvalidConfig { .. }), "{err}");
    }

    #[test]
    fn non_numeric_cell() {
        let csv = "claim_id,age,claim_amount,diagnosis_group\nH-1,1,2,x\nH-2,2,twelve-hundred,y\n";
        let err = load_err(csv, ALL, "twelve");
        assert!(matches!(
            &err,
            DatasetError::BadCell { row: 2, line: 3, column, expected: ColumnType::Float, .. }
                if column == "claim_amount"
        ));
        assert_eq!(
            err.to_string(),
            "hospital_claims.csv row 2 (line 3), column \"claim_amount\": expected a float"
        );
    }

    #[test]
    fn non_finite_cells() {
        for cell in ["NaN", "nan", "inf", "-infinity", "1e400"] {
            let csv = format!("claim_id,age,claim_amount,diagnosis_group\nH-1,1,{cell},x\n");
            let err = load_err(&csv, &["claim_amount"], cell);
            assert!(
                matches!(
                    err,
                    DatasetError::BadCell {
                        row: 1,
                        line: 2,
                        ..
                    }
                ),
                "{cell}: {err}"
            );
        }
    }

    #[test]
    fn empty_numeric_cell() {
        let csv = "claim_id,age,claim_amount,diagnosis_group\nH-1, ,2,x\n";
        let err = load_err(csv, &["age"], "H-1");
        assert!(matches!(
            err,
            DatasetError::BadCell {
                row: 1,
                expected: ColumnType::Int,
                ..
            }
        ));
    }

    #[test]
    fn int_with_decimals() {
        let csv = "claim_id,age,claim_amount,diagnosis_group\nH-1,3.5,2,x\n";
        let err = load_err(csv, &["age"], "3.5");
        assert_eq!(
            err.to_string(),
            "hospital_claims.csv row 1 (line 2), column \"age\": expected an int"
        );
    }

    #[test]
    fn int_beyond_exact_range() {
        let csv = "claim_id,age,claim_amount,diagnosis_group\nH-1,-9007199254740993,2,x\n";
        let err = load_err(csv, &["age"], "9007199254740993");
        assert!(
            matches!(err, DatasetError::IntOutOfRange { row: 1, .. }),
            "{err}"
        );
        let csv = "claim_id,age,claim_amount,diagnosis_group\nH-1,99999999999999999999,2,x\n";
        let err = load_err(csv, &["age"], "99999999999999999999");
        assert!(matches!(err, DatasetError::BadCell { .. }), "{err}");
    }

    #[test]
    fn invalid_utf8_in_text_cell() {
        let (_dir, path) = write_csv("");
        fs::write(
            &path,
            b"claim_id,age,claim_amount,diagnosis_group\nH-1,1,2,\xff\n",
        )
        .unwrap();
        let err = load_columns(&claims_cfg(), &path, &["diagnosis_group"]).unwrap_err();
        assert!(matches!(
            err,
            DatasetError::BadCell {
                expected: ColumnType::String,
                ..
            }
        ));
        // Undecodable bytes in a column that is not loaded are not an error.
        assert!(load_columns(&claims_cfg(), &path, &["age"]).is_ok());
    }

    #[test]
    fn ragged_row() {
        let csv = "claim_id,age,claim_amount,diagnosis_group\nH-1,1,2,x\nH-2,SECRET,3\n";
        let err = load_err(csv, &["age"], "SECRET");
        assert!(matches!(err, DatasetError::Csv { line: 3, .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "hospital_claims.csv line 3: found 3 fields, but the header has 4"
        );
    }

    #[test]
    fn line_is_data_row_plus_one() {
        // Reported lines are `row + 1` whatever the line endings, blank lines
        // or quoted line breaks: the csv reader cannot count lines exactly
        // across all three.
        let csv = "claim_id,age,claim_amount,diagnosis_group\r\nH-1,1,2,\"two\nlines\"\r\n\r\nH-2,x,3,y\r\n";
        let err = load(csv, &["age"]).unwrap_err();
        assert!(
            matches!(
                err,
                DatasetError::BadCell {
                    row: 2,
                    line: 3,
                    ..
                }
            ),
            "{err}"
        );
        let csv = "claim_id,age,claim_amount,diagnosis_group\r\nH-1,1,2,x\r\nH-2,3\r\n";
        let err = load(csv, &["age"]).unwrap_err();
        assert!(matches!(err, DatasetError::Csv { line: 3, .. }), "{err}");
    }

    #[test]
    fn validate_rejects_bad_declarations() {
        /// Breaks a valid config with `edit` and expects `reason` in the error.
        fn assert_invalid(reason: &str, edit: impl FnOnce(&mut DatasetConfig)) {
            let mut cfg = claims_cfg();
            edit(&mut cfg);
            let err = cfg.validate().unwrap_err();
            assert!(
                matches!(&err, DatasetError::InvalidConfig { reason: r, .. } if r.contains(reason)),
                "expected {reason:?}, got {err}"
            );
        }
        assert!(claims_cfg().validate().is_ok());
        assert_invalid("name is empty", |cfg| cfg.name = " ".to_owned());
        assert_invalid("path is empty", |cfg| cfg.path = PathBuf::new());
        assert_invalid("no columns", |cfg| cfg.columns.clear());
        assert_invalid("declared twice", |cfg| {
            cfg.columns[2].name = "age".to_owned();
        });
        assert_invalid("whitespace", |cfg| cfg.columns[1].name = "age ".to_owned());
        assert_invalid("id_column", |cfg| cfg.id_column = "nope".to_owned());
    }

    #[test]
    fn column_lookup_and_types() {
        let cfg = claims_cfg();
        assert_eq!(cfg.column("age").map(|decl| decl.ty), Some(ColumnType::Int));
        assert!(cfg.column("nope").is_none());
        assert!(ColumnType::Int.is_numeric() && ColumnType::Float.is_numeric());
        assert!(!ColumnType::String.is_numeric());
    }

    #[test]
    fn resolve_path_is_relative_to_config_dir() {
        let mut cfg = claims_cfg();
        assert_eq!(
            cfg.resolve_path(Path::new("/etc/treaty")),
            Path::new("/etc/treaty/data/hospital_claims.csv")
        );
        cfg.path = PathBuf::from("/srv/claims.csv");
        assert_eq!(
            cfg.resolve_path(Path::new("/etc/treaty")),
            Path::new("/srv/claims.csv")
        );
    }

    fn filter_table() -> Table {
        let csv = "\
claim_id,age,claim_amount,diagnosis_group
H-1,30,100.5,cardio
H-2,45,250,Cardio
H-3,45,99.99,cardio
H-4,70,1000,oncology
";
        load(csv, ALL).unwrap()
    }

    #[test]
    fn filter_equals_string_is_exact() {
        let table = filter_table();
        let mask = filter_mask(
            &table,
            &claims_cfg(),
            "diagnosis_group",
            &Predicate::Equals("cardio".to_owned()),
        )
        .unwrap();
        assert_eq!(mask, [true, false, true, false]);
    }

    #[test]
    fn filter_equals_numeric_compares_numbers() {
        let table = filter_table();
        let cfg = claims_cfg();
        let equals = |column, value: &str| {
            filter_mask(&table, &cfg, column, &Predicate::Equals(value.to_owned()))
        };
        assert_eq!(equals("age", " 45.0 ").unwrap(), [false, true, true, false]);
        assert_eq!(
            equals("claim_amount", "2.5e2").unwrap(),
            [false, true, false, false]
        );
        let err = equals("age", "forty").unwrap_err();
        assert!(
            matches!(&err, DatasetError::BadFilterValue { column, .. } if column == "age"),
            "{err}"
        );
        assert!(matches!(
            equals("age", "NaN").unwrap_err(),
            DatasetError::BadFilterValue { .. }
        ));
    }

    #[test]
    fn filter_range_is_inclusive() {
        let table = filter_table();
        let cfg = claims_cfg();
        let range = |min, max| {
            let mask = filter_mask(&table, &cfg, "age", &Predicate::Range { min, max });
            mask.unwrap()
        };
        assert_eq!(range(Some(30.0), Some(45.0)), [true, true, true, false]);
        assert_eq!(range(Some(45.0), None), [false, true, true, true]);
        assert_eq!(range(None, Some(29.9)), [false; 4]);
        assert_eq!(range(None, None), [true; 4]);
        assert_eq!(range(Some(50.0), Some(40.0)), [false; 4]);

        let amounts = table.numeric("claim_amount").unwrap();
        let mask = filter_mask(
            &table,
            &cfg,
            "claim_amount",
            &Predicate::Range {
                min: Some(99.99),
                max: Some(250.0),
            },
        )
        .unwrap();
        assert_eq!(select(amounts, &mask), [100.5, 250.0, 99.99]);
    }

    #[test]
    fn filter_errors() {
        let table = filter_table();
        let cfg = claims_cfg();
        let nan = Predicate::Range {
            min: Some(f64::NAN),
            max: None,
        };
        let range = Predicate::Range {
            min: Some(1.0),
            max: None,
        };
        let err = filter_mask(&table, &cfg, "diagnosis_group", &range).unwrap_err();
        assert!(
            matches!(&err, DatasetError::WrongType { column, found: ColumnType::String, .. }
                if column == "diagnosis_group")
        );
        assert_eq!(
            err.to_string(),
            "column \"diagnosis_group\" is a string column, but a numeric column is needed"
        );
        let err = filter_mask(&table, &cfg, "age", &nan).unwrap_err();
        assert!(matches!(err, DatasetError::BadFilterValue { .. }), "{err}");
        let err = filter_mask(&table, &cfg, "region", &range).unwrap_err();
        assert!(
            matches!(err, DatasetError::UndeclaredColumn { .. }),
            "{err}"
        );

        let partial = load(
            "claim_id,age,claim_amount,diagnosis_group\nH-1,1,2,x\n",
            &["age"],
        )
        .unwrap();
        let err = filter_mask(&partial, &cfg, "claim_amount", &range).unwrap_err();
        assert!(matches!(err, DatasetError::NotLoaded { .. }), "{err}");
    }

    #[test]
    fn select_keeps_masked_values_in_order() {
        assert_eq!(select(&[1.0, 2.0, 3.0], &[true, false, true]), [1.0, 3.0]);
        assert_eq!(select(&[], &[]), [] as [f64; 0]);
    }

    #[test]
    #[should_panic(expected = "one entry per value")]
    fn select_rejects_mismatched_mask() {
        select(&[1.0], &[]);
    }

    fn finite_f64() -> impl Strategy<Value = f64> {
        use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
        POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn floats_round_trip_through_csv(values in prop::collection::vec(finite_f64(), 0..40)) {
            let mut csv = String::from("claim_id,age,claim_amount,diagnosis_group\n");
            for (i, value) in values.iter().enumerate() {
                writeln!(csv, "H-{i},{i},{value},x").unwrap();
            }
            let table = load(&csv, &["claim_amount"]).unwrap();
            let loaded = table.numeric("claim_amount").unwrap();
            let bits = |xs: &[f64]| xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(loaded), bits(&values), "values {:?}", values);
        }
    }
}
