//! Whether Argo CD or Flux applied a commit, read from the status of an Argo CD
//! `Application` (argoproj.io/v1alpha1) or a Flux `Kustomization`
//! (kustomize.toolkit.fluxcd.io/v1) as untyped JSON: only the fields below are read, and
//! their CRDs are not vendored.
//!
//! - Application: `status.sync.revision` (or `revisions` for several sources),
//!   `status.sync.status`, `status.health.status` and `message`,
//!   `status.operationState.phase`, `message` and `syncResult.revision`.
//! - Kustomization: `status.lastAppliedRevision`, `status.lastAttemptedRevision` and the
//!   `Ready` condition's status and message.

use serde_json::Value;

use crate::engine::{SyncState, short};

/// The Argo CD Application's kind, as the API serves it.
pub const ARGO_CD: (&str, &str, &str, &str) =
    ("argoproj.io", "v1alpha1", "Application", "applications");
/// The Flux Kustomization's kind, as the API serves it.
pub const FLUX: (&str, &str, &str, &str) = (
    "kustomize.toolkit.fluxcd.io",
    "v1",
    "Kustomization",
    "kustomizations",
);

/// Where an Argo CD Application stands with the images of `declaring` (the commits, newest
/// first, at which the branch declares them).
pub fn argo_cd(app: &Value, declaring: &[String]) -> SyncState {
    let status = &app["status"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let revisions: Vec<String> = match status["sync"]["revisions"].as_array() {
        Some(list) if !list.is_empty() => list.iter().map(text).collect(),
        _ => vec![text(&status["sync"]["revision"])],
    };
    let sync = text(&status["sync"]["status"]);
    let health = text(&status["health"]["status"]);
    let operation = &status["operationState"];
    let operation_revision = text(&operation["syncResult"]["revision"]);
    let operation_failed = matches!(operation["phase"].as_str(), Some("Failed" | "Error"));
    if operation_failed
        && (declares(declaring, &operation_revision) || operation_revision.is_empty())
    {
        return SyncState::Failed(format!(
            "sync {}: {}",
            text(&operation["phase"]).to_lowercase(),
            text(&operation["message"])
        ));
    }
    if !revisions.iter().any(|r| declares(declaring, r)) {
        let at = revisions.first().map(String::as_str).unwrap_or_default();
        return SyncState::Waiting(if at.is_empty() {
            "not synced yet".to_owned()
        } else {
            format!("synced to {}, {}", short(at), or_unknown(&sync))
        });
    }
    match (sync.as_str(), health.as_str()) {
        (_, "Degraded") => SyncState::Failed(format!(
            "Degraded: {}",
            or_unknown(&text(&status["health"]["message"]))
        )),
        ("Synced", "Healthy") => SyncState::Healthy,
        _ => SyncState::Progressing(format!("{}, {}", or_unknown(&sync), or_unknown(&health))),
    }
}

/// Where a Flux Kustomization stands with the images of `declaring`.
pub fn flux(kustomization: &Value, declaring: &[String]) -> SyncState {
    let status = &kustomization["status"];
    let applied = status["lastAppliedRevision"].as_str().unwrap_or_default();
    let attempted = status["lastAttemptedRevision"].as_str().unwrap_or_default();
    let ready = status["conditions"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["type"] == "Ready"));
    let (ready_status, message) = ready.map_or(("Unknown", ""), |c| {
        (
            c["status"].as_str().unwrap_or("Unknown"),
            c["message"].as_str().unwrap_or_default(),
        )
    });
    let ours = |revision: &str| declares(declaring, flux_commit(revision));
    if ours(attempted) && !ours(applied) && ready_status == "False" {
        return SyncState::Failed(message.to_owned());
    }
    if !ours(applied) {
        return SyncState::Waiting(if applied.is_empty() {
            "nothing applied yet".to_owned()
        } else {
            format!("applied {}", short(flux_commit(applied)))
        });
    }
    match ready_status {
        "True" => SyncState::Healthy,
        "False" => SyncState::Failed(message.to_owned()),
        _ => SyncState::Progressing(or_unknown(message)),
    }
}

/// The commit of a Flux revision: `main@sha1:<id>` (Flux 2.x) or `main/<id>` (before).
fn flux_commit(revision: &str) -> &str {
    revision
        .rsplit_once(':')
        .or_else(|| revision.rsplit_once('/'))
        .map_or(revision, |(_, id)| id)
}

/// Whether `revision` (a full commit id) is among `declaring`.
fn declares(declaring: &[String], revision: &str) -> bool {
    !revision.is_empty() && declaring.iter().any(|c| c == revision)
}

fn or_unknown(text: &str) -> String {
    if text.is_empty() {
        "unknown".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const OURS: &str = "1111111111111111111111111111111111111111";
    const LATER: &str = "2222222222222222222222222222222222222222";
    const OLDER: &str = "0000000000000000000000000000000000000000";

    fn declaring() -> Vec<String> {
        vec![LATER.to_owned(), OURS.to_owned()]
    }

    #[test]
    fn argo_cd_is_healthy_only_when_synced_at_a_declaring_commit() {
        let app = |revision: &str, sync: &str, health: &str| json!({"status": {"sync": {"revision": revision, "status": sync}, "health": {"status": health, "message": "Deployment web exceeded its progress deadline"}}});
        assert_eq!(
            argo_cd(&app(OURS, "Synced", "Healthy"), &declaring()),
            SyncState::Healthy
        );
        assert_eq!(
            argo_cd(&app(LATER, "Synced", "Healthy"), &declaring()),
            SyncState::Healthy,
            "a later commit that still declares the images"
        );
        assert_eq!(
            argo_cd(&app(OLDER, "OutOfSync", "Healthy"), &declaring()),
            SyncState::Waiting("synced to 0000000, OutOfSync".into())
        );
        assert_eq!(
            argo_cd(&app(OURS, "Synced", "Progressing"), &declaring()),
            SyncState::Progressing("Synced, Progressing".into())
        );
        assert_eq!(
            argo_cd(&app(OURS, "Synced", "Degraded"), &declaring()),
            SyncState::Failed("Degraded: Deployment web exceeded its progress deadline".into())
        );
        let failed = json!({"status": {"sync": {"revision": OLDER, "status": "OutOfSync"}, "operationState": {"phase": "Failed", "message": "one or more objects failed to apply", "syncResult": {"revision": OURS}}}});
        assert_eq!(
            argo_cd(&failed, &declaring()),
            SyncState::Failed("sync failed: one or more objects failed to apply".into())
        );
        assert_eq!(
            argo_cd(&json!({}), &declaring()),
            SyncState::Waiting("not synced yet".into())
        );
    }

    #[test]
    fn flux_is_healthy_when_ready_at_a_declaring_commit() {
        let ks = |applied: &str, attempted: &str, ready: &str| {
            json!({"status": {"lastAppliedRevision": applied, "lastAttemptedRevision": attempted,
                "conditions": [{"type": "Ready", "status": ready, "message": "Applied revision: main@sha1:x"}]}})
        };
        let at = |id: &str| format!("main@sha1:{id}");
        assert_eq!(
            flux(&ks(&at(OURS), &at(OURS), "True"), &declaring()),
            SyncState::Healthy
        );
        assert_eq!(
            flux(
                &ks(&format!("main/{LATER}"), &at(LATER), "True"),
                &declaring()
            ),
            SyncState::Healthy
        );
        assert_eq!(
            flux(&ks(&at(OLDER), &at(OLDER), "True"), &declaring()),
            SyncState::Waiting("applied 0000000".into())
        );
        assert_eq!(
            flux(&ks(&at(OLDER), &at(OURS), "False"), &declaring()),
            SyncState::Failed("Applied revision: main@sha1:x".into()),
            "the attempt at our commit failed"
        );
        assert!(matches!(
            flux(&ks(&at(OURS), &at(OURS), "Unknown"), &declaring()),
            SyncState::Progressing(_)
        ));
    }
}
