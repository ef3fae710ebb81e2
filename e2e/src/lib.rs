//! Shared pieces of the end-to-end tests: the env contract with xtask, the target (local or
//! cluster), TLS set-up, time budgets and test bodies. Rows go to the report (`wsgate-report`).

pub mod budget;
pub mod cases;
pub mod env;
pub mod own;
pub mod target;
pub mod tls;

pub use env::Phase;
pub use target::{Target, TargetError};
pub use wsgate_report::{self as report, Expect, Observed, Row};
