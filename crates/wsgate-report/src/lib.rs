//! Report rows: one per case, typed until rendered, judged once from what was expected and
//! what was observed; recording or reading a row that fails is an error, never silent.

mod expect;
mod render;
mod row;
mod store;

pub use expect::{Condition, Expect, Observed};
pub use render::{markdown, table};
pub use row::{Row, RowBuilder, assert_rows, failures};
pub use store::{ENV_REPORT_DIR, ReportError, read_rows, report_dir};
