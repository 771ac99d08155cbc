//! The promotion engine: a pure function from a [`Snapshot`] of the world to a
//! [`Decision`]. No client, no clock, no I/O: the controller and the simulator both run it.

pub mod approvals;
pub mod clock;
mod decision;
pub mod jobs;
mod snapshot;

pub use decision::*;
pub use snapshot::*;
