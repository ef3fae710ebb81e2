//! The kind tier (and existing clusters): plan, prerequisites, pins, and the executor.

pub mod exec;
pub mod pins;
pub mod plan;
pub mod prereq;
