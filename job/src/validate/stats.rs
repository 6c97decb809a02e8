//! `stats` jobs: columns, filters and ranges, over each party's rows or a join.

use super::join::resolve;
use super::*;

/// Checks a `stats` job over each party's own rows: the columns and filters at every party's
/// dataset, and the ranges.
pub(super) fn check(
    stats: &StatsJob,
    datasets: &[(&str, &DatasetSchema)],
    problems: &mut Problems,
) {
    check_column_list(stats, problems);
    for (party, ds) in datasets {
        for c in &stats.columns {
            check_value_column("stats.columns", party, ds, c, problems);
        }
        for (field, f) in filter_fields(stats) {
            check_filter(&field, party, ds, &f.column, f, &[], problems);
        }
    }
    check_ranges(stats, problems);
}

/// Every filter of a `stats` job: `filter` and then `filters`.
pub fn all_filters(stats: &StatsJob) -> impl Iterator<Item = &Filter> {
    stats.filter.iter().chain(&stats.filters)
}

/// [`all_filters`], each with its field as a job file names it: `stats.filter` for the one
/// filter, `stats.filter[i]` for the `i`th of a list.
fn filter_fields(stats: &StatsJob) -> impl Iterator<Item = (String, &Filter)> {
    let one = stats.filter.iter().map(|f| ("stats.filter".to_string(), f));
    let listed = (stats.filters.iter().enumerate()).map(|(i, f)| (format!("stats.filter[{i}]"), f));
    one.chain(listed)
}

/// At least one column, none twice.
fn check_column_list(stats: &StatsJob, problems: &mut Problems) {
    if stats.columns.is_empty() {
        problems.push(missing("stats.columns", "name at least one numeric column"));
    }
    let mut cols = HashSet::new();
    for c in &stats.columns {
        if !cols.insert(c) {
            problems.push(SpecProblem::new(
                "stats.columns",
                ProblemKind::Duplicate { name: c.clone() },
            ));
        }
    }
}

/// A filter (`field`) on `column` of `ds`: it exists, is not a record id column (neither the
/// dataset's nor one of `id_columns`), and its predicate fits the column's type.
fn check_filter(
    field: &str,
    party: &str,
    ds: &DatasetSchema,
    column: &str,
    f: &Filter,
    id_columns: &[&str],
    problems: &mut Problems,
) {
    let column_field = format!("{field}.column");
    if column == ds.id_column || id_columns.contains(&column) {
        problems.push(SpecProblem::new(
            column_field.as_str(),
            ProblemKind::IdColumn {
                party: party.to_string(),
                column: column.to_string(),
            },
        ));
    }
    match (column_type(ds, column), &f.predicate) {
        (None, _) => problems.push(unknown_column(&column_field, party, ds, column)),
        (_, None) => problems.push(missing(field, "give `equals` or a range (`min`/`max`)")),
        (Some(found @ ColumnType::String), Some(filter::Predicate::Range(_))) => {
            problems.push(wrong_type(
                &column_field,
                party,
                ds,
                column,
                "numeric (a range needs numbers)",
                found,
            ))
        }
        (Some(ColumnType::Int | ColumnType::Float), Some(filter::Predicate::Equals(v)))
            if v.trim().parse::<f64>().is_err() =>
        {
            problems.push(bad_value(
                format!("{field}.equals"),
                format!("{v:?}"),
                "a number (the column is numeric)",
            ))
        }
        _ => {}
    }
}

/// Ranges with `min > max`.
fn check_ranges(stats: &StatsJob, problems: &mut Problems) {
    for (field, f) in filter_fields(stats) {
        if let Some(filter::Predicate::Range(r)) = &f.predicate
            && let (Some(lo), Some(hi)) = (r.min, r.max)
            && lo > hi
        {
            problems.push(SpecProblem::new(
                field,
                ProblemKind::RangeReversed {
                    min: lo.to_string(),
                    max: hi.to_string(),
                },
            ));
        }
    }
}

/// Checks a `stats` job with a join: [`super::join::check`], and `party.column` names for columns and
/// filters.
pub(super) fn check_join(
    spec: &JobSpec,
    stats: &StatsJob,
    join: &JoinSpec,
    datasets: &[(&str, &DatasetSchema)],
    problems: &mut Problems,
) {
    join::check(spec, join, datasets, problems);
    check_column_list(stats, problems);
    for c in &stats.columns {
        if let Some((party, column, ds)) = resolve(c, "stats.columns", join, datasets, problems) {
            check_value_column("stats.columns", party, ds, column, problems);
        }
    }
    for (field, f) in filter_fields(stats) {
        let column_field = format!("{field}.column");
        if let Some((party, column, ds)) =
            resolve(&f.column, &column_field, join, datasets, problems)
        {
            let id = join.id_columns.get(party).map(String::as_str);
            check_filter(&field, party, ds, column, f, id.as_slice(), problems);
        }
    }
    check_ranges(stats, problems);
}
