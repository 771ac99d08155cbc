//! Greenlight: promotes releases through environments only when their gates pass.
#![forbid(unsafe_code)]

pub mod api;
pub mod check;
pub mod checks;
pub mod controller;
pub mod engine;
pub mod gitops;
pub mod loadtest;
pub mod metrics;
pub mod plugin;
pub mod sim;
pub mod suggest;
pub mod validation;
