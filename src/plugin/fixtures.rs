//! Objects the plugin's unit tests build on.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{Release, ReleaseSpec, Source};

/// A time from RFC 3339 text.
pub fn at(text: &str) -> Time {
    Time(text.parse().unwrap())
}

/// A Release of `pipeline` in namespace `shop`, built from `main`, with one artifact.
pub fn release(name: &str, version: &str, pipeline: &str) -> Release {
    let mut release = Release::new(
        name,
        ReleaseSpec {
            pipeline: pipeline.into(),
            version: version.into(),
            artifacts: [("api".to_string(), format!("api:{version}"))].into(),
            source: Source {
                git_ref: "main".into(),
                commit: None,
                author: None,
            },
            requested_by: None,
            checks: vec![],
        },
    );
    release.metadata.namespace = Some("shop".into());
    release
}
