//! Shared pieces of the end-to-end tests: the env contract with xtask, the target (local or
//! cluster), TLS set-up, test bodies and the report.

pub mod budget;
pub mod cases;
pub mod env;
pub mod report;
pub mod target;
pub mod tls;

pub use env::Phase;
pub use report::{Expect, Row};
pub use target::{Target, TargetError};
