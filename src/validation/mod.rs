//! Checks what the API server cannot: semantics, cross-references, cron, time zones.
//!
//! Every problem names the field path (`spec.environments[2].gates.schedule[0].cron`),
//! the bad value and what was expected. Validation never stops at the first problem.

mod duration;
mod git;
mod job;
mod model;
pub mod names;
mod pipeline;
mod problems;
mod references;
mod release;
mod schedule;
pub mod schema;

pub use duration::{format_duration, parse_duration};
pub use git::DEFAULT_AUTHOR;
pub use job::validate_job_template;
pub use model::*;
pub use pipeline::validate_pipeline;
pub use problems::{FieldPath, Problem, Problems, Severity};
pub use references::{validate_approval_references, validate_release_references};
pub use release::{validate_approval, validate_release};
pub use schedule::{CronSchedule, Freeze, Window, parse_cron, parse_time_zone};
