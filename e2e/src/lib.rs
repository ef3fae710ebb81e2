//! Shared pieces of the end-to-end tests: where the ingress is (the target), and the report.

pub mod cases;
pub mod report;
pub mod target;

pub use report::{Expect, Row};
pub use target::{Phase, Target, TargetError, suite_variants};
