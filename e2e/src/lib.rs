//! Test support for the end-to-end tests, and nothing else depends on it: the target a test
//! dials (a local nginx it starts, or a cluster the runner prepared), time budgets and shared
//! test bodies. The contract with the runner is `wsgate-contract`; rows go to `wsgate-report`.

pub mod budget;
pub mod cases;
pub mod target;

pub use target::{Target, TargetError};
pub use wsgate_contract::{self as env, Phase};
pub use wsgate_report::{self as report, Expect, Observed, Row};
