//! The promotion engine: a pure function from a [`Snapshot`] of the world to a
//! [`Decision`]. No client, no clock, no I/O: the controller and the simulator both run it.

pub mod approvals;
pub mod canary;
pub mod clock;
mod context;
mod decide;
mod decision;
mod explain;
mod gate;
mod gates;
pub mod jobs;
mod promotion;
mod snapshot;
pub mod targets;
mod workload;

pub use decide::{decide, decide_with};
pub use decision::*;
pub use gate::{GATES, Gate};
pub use gates::gates_that_can_block;
pub use snapshot::*;
pub use targets::short;
pub use workload::*;
