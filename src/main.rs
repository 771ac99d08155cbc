//! The `greenlight` command line.
#![forbid(unsafe_code)]

fn main() {
    print!("{}", greenlight::api::crds_yaml());
}
