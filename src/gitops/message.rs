//! The message of a Greenlight commit: what and why for people, trailers for the
//! controller to read back (see [`super::repo`]).

use super::repo::{TRAILER_ENVIRONMENT, TRAILER_PIPELINE, TRAILER_PURPOSE, TRAILER_RELEASE};
use crate::engine::{CommitPurpose, CommitRequest};

/// The message of `request`'s commit for the Pipeline `pipeline` (`namespace/name`).
pub fn commit_message(pipeline: &str, request: &CommitRequest) -> String {
    let note = &request.note;
    let verb = match note.purpose {
        CommitPurpose::Deploy => "Deploy",
        CommitPurpose::Rollback => "Roll back",
        CommitPurpose::Restore => "Restore",
    };
    let release = note
        .release
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let mut message = format!(
        "{verb} {} to {}{release}\n\n",
        request.environment, note.version
    );
    for (artifact, image) in &request.images {
        message.push_str(&format!("{artifact}: {image}\n"));
    }
    if !note.details.is_empty() {
        message.push('\n');
        for detail in &note.details {
            message.push_str(&format!("{detail}\n"));
        }
    }
    message.push('\n');
    message.push_str(&format!("{TRAILER_PIPELINE}: {pipeline}\n"));
    message.push_str(&format!("{TRAILER_ENVIRONMENT}: {}\n", request.environment));
    if let Some(release) = &note.release {
        message.push_str(&format!("{TRAILER_RELEASE}: {release}\n"));
    }
    message.push_str(&format!("{TRAILER_PURPOSE}: {}\n", note.purpose.as_str()));
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{engine::ChangeNote, gitops::repo::trailers};

    #[test]
    fn says_what_and_why_and_ends_with_trailers() {
        let request = CommitRequest {
            environment: "prod".into(),
            images: [(
                "web".to_owned(),
                "registry.example.com/shop/web:1.4.2".to_owned(),
            )]
            .into(),
            note: ChangeNote {
                purpose: CommitPurpose::Deploy,
                release: Some("shop-1-4-2".into()),
                version: "1.4.2".into(),
                details: vec![
                    "gates passed: soak, approvals".into(),
                    "approved by alice, bob".into(),
                ],
            },
        };
        let message = commit_message("shop/shop", &request);
        assert_eq!(
            message,
            "Deploy prod to 1.4.2 (shop-1-4-2)\n\nweb: registry.example.com/shop/web:1.4.2\n\ngates passed: soak, approvals\napproved by alice, bob\n\n\
             Greenlight-Pipeline: shop/shop\nGreenlight-Environment: prod\nGreenlight-Release: shop-1-4-2\nGreenlight-Purpose: deploy\n"
        );
        let read = trailers(&message);
        assert_eq!(read["Greenlight-Environment"], "prod");
        assert_eq!(read["Greenlight-Release"], "shop-1-4-2");
    }
}
