//! Checks every job kind makes of this party's own datasets before it touches a row: the
//! dataset exists, its file is there, a column is declared and numeric.

use crate::PartyError;
use crate::config::PartyConfig;
use crate::dataset::DatasetConfig;
use crate::refusal::{ColumnRole, Refusal};

/// The refusal of a job naming a dataset this party does not have.
pub(crate) fn unknown_dataset(dataset: &str) -> PartyError {
    Refusal::UnknownDataset {
        dataset: dataset.to_string(),
    }
    .into()
}

/// Refuses a column the dataset does not declare, or declares non-numeric.
pub(crate) fn check_numeric(ds: &DatasetConfig, dataset: &str, c: &str) -> Result<(), PartyError> {
    match ds.column(c) {
        None => Err(Refusal::NoColumn {
            dataset: dataset.to_string(),
            column: c.to_string(),
            role: ColumnRole::Value,
        }
        .into()),
        Some(d) if !d.ty.is_numeric() => Err(Refusal::NotNumeric {
            dataset: dataset.to_string(),
            column: c.to_string(),
            ty: d.ty,
        }
        .into()),
        Some(_) => Ok(()),
    }
}

/// Refuses a dataset whose file is gone.
pub(crate) fn check_file(cfg: &PartyConfig, ds: &DatasetConfig) -> Result<(), PartyError> {
    if !cfg.resolve(&ds.path).is_file() {
        return Err(Refusal::MissingFile {
            dataset: ds.name.clone(),
        }
        .into());
    }
    Ok(())
}
