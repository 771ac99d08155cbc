//! The promotion engine: a pure function from a [`Snapshot`] of the world to a
//! [`Decision`]. No client, no clock, no I/O: the controller and the simulator both run it.

pub mod clock;
mod decision;
mod snapshot;

pub use decision::*;
pub use snapshot::*;
