//! Image changes and Job creations in flight: sent, but not yet shown by the stores.
//!
//! A reconcile that runs before the watch shows our own write decides the same action
//! again (the store still has the old image, or no Job). Remembering what was sent over
//! which cached version (in an [`Unseen`](super::unseen::Unseen)) keeps it from being sent
//! twice; an entry goes when the store shows the object again. A decision made from a
//! snapshot older than the store (its write seen while the decision was being applied,
//! which also forgets the entry) is not sent either where the store shows its images.

use super::{clusters::Clusters, world::Stores};
use crate::engine::{Action, ContainerImage, WorkloadRef, WorkloadView};

/// An image change or Job creation, as remembered until the stores show it: the object
/// it goes to, the version of it the decision saw, and what was sent.
pub struct SentAction {
    object: (String, String),
    over: Option<String>,
    /// What was sent: (container, image) pairs, none for a Job.
    pub what: Vec<(String, String)>,
    /// For an image change, the store's images of the same containers now: equal to
    /// `what` once the change is seen.
    shown: Option<Vec<(String, String)>>,
}

/// The memo key of a workload's image changes.
pub fn workload_key(workload: &WorkloadRef) -> (String, String) {
    let place = match &workload.cluster {
        None => format!("{}/{}", workload.kind, workload.namespace),
        Some(cluster) => format!("{cluster}:{}/{}", workload.kind, workload.namespace),
    };
    (place, workload.name.clone())
}

/// The memo key of a Job's creation.
pub fn job_key(namespace: &str, name: &str) -> (String, String) {
    (format!("Job/{namespace}"), name.to_owned())
}

/// The images `cached` shows for the containers of `images`, as `(container, image)`
/// pairs in `images`' order; `None` where it has no such container (or is not cached).
fn shown_images(
    cached: Option<&WorkloadView>,
    images: &[ContainerImage],
) -> Option<Vec<(String, String)>> {
    images
        .iter()
        .map(|i| {
            let container = cached?
                .containers
                .iter()
                .find(|c| c.container == i.container)?;
            Some((container.container.clone(), container.image.clone()))
        })
        .collect()
}

impl SentAction {
    /// The memo entry of `action` for a Pipeline in `namespace`; `None` for deletions,
    /// which are always sent, and for Jobs in other clusters, whose watches do not clear
    /// the memo (creating one is idempotent: it exists, or it is created).
    pub fn of(
        action: &Action,
        namespace: &str,
        stores: &Stores,
        clusters: &Clusters,
    ) -> Option<Self> {
        match action {
            Action::CreateJob(request) if request.cluster.is_some() => None,
            Action::SetImages { workload, images } => {
                // In another cluster, its store: the memo stands until that store shows
                // the write (or anything else) changed the workload.
                let workloads = match &workload.cluster {
                    None => stores.workloads.clone(),
                    Some(cluster) => {
                        clusters
                            .stores_of(namespace, cluster, &workload.namespace)?
                            .workloads
                    }
                };
                let cached = workloads.view(workload.kind, &workload.namespace, &workload.name);
                let shown = shown_images(cached.as_ref(), images);
                Some(Self {
                    object: workload_key(workload),
                    over: workloads.resource_version(workload),
                    what: images
                        .iter()
                        .map(|i| (i.container.clone(), i.image.clone()))
                        .collect(),
                    shown,
                })
            }
            // Asked at every decision of a canary step: remembered, with its images and
            // share, until the store shows the canary change.
            Action::SetCanary {
                stable,
                images,
                weight,
            } => {
                let canary = crate::engine::canary::canary_of(stable);
                Some(Self {
                    object: workload_key(&canary),
                    over: match &canary.cluster {
                        None => stores.workloads.resource_version(&canary),
                        Some(cluster) => clusters
                            .stores_of(namespace, cluster, &canary.namespace)?
                            .workloads
                            .resource_version(&canary),
                    },
                    what: images
                        .iter()
                        .map(|i| (i.container.clone(), i.image.clone()))
                        .chain([("weight".to_owned(), weight.to_string())])
                        .collect(),
                    shown: None,
                })
            }
            Action::DeleteCanary { .. } => None,
            // Asked only while the route is seen with other weights; the patch tests the
            // route's version, so a repeat before the watch shows it fails harmlessly.
            Action::SetRouteWeights { .. } => None,
            // Asked for only while the store has no such Job: remembered until it has
            // (or the Job's deletion is seen).
            Action::CreateJob(request) => Some(Self {
                object: job_key(&request.namespace, &request.name),
                over: None,
                what: Vec::new(),
                shown: None,
            }),
            Action::DeleteJob { .. } => None,
            // Reads the branch first: a commit it already holds is not made again.
            Action::Commit(_) => None,
        }
    }

    /// The memo key.
    pub fn key(&self) -> (&str, &str) {
        (&self.object.0, &self.object.1)
    }

    /// The cached version the decision saw.
    pub fn over(&self) -> Option<&str> {
        self.over.as_deref()
    }

    /// The fingerprint of what the store shows of the change now (as
    /// [`Unseen::needs_write`](super::unseen::Unseen::needs_write) compares it with `what`'s).
    pub fn shown(&self) -> Option<u64> {
        self.shown.as_ref().map(super::unseen::fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        controller::unseen::{Unseen, fingerprint},
        engine::{RolloutState, WorkloadKind},
    };

    fn image(container: &str, image: &str) -> ContainerImage {
        ContainerImage {
            container: container.into(),
            image: image.into(),
        }
    }

    fn cached(images: &[ContainerImage]) -> WorkloadView {
        WorkloadView {
            cluster: None,
            kind: WorkloadKind::DaemonSet,
            namespace: "shop-prod".into(),
            name: "edge".into(),
            containers: images.to_vec(),
            generation: 2,
            observed_generation: 2,
            rollout: RolloutState::Complete,
            available: true,
            replicas: None,
            image_managers: Vec::new(),
        }
    }

    const NEW: &str = "registry.example.com/shop/api:1.0.0";
    const OLD: &str = "registry.example.com/shop/api:0.9.0";

    /// A decision from a snapshot taken before the store showed this replica's own image
    /// change (the watch event arrived while the decision was being applied, and forgot the
    /// memo entry) asks for the same change: the store, which shows it, answers.
    #[test]
    fn a_change_the_store_already_shows_is_not_sent_again() {
        let wanted = [image("api", NEW)];
        let what = vec![("api".to_owned(), NEW.to_owned())];
        let unseen = Unseen::default();
        let sidecar = image("proxy", "envoy:1.30");
        let shown = shown_images(
            Some(&cached(&[sidecar.clone(), image("api", NEW)])),
            &wanted,
        );
        assert_eq!(shown.as_ref(), Some(&what), "only the changed containers");
        assert!(!unseen.needs_write(
            ("DaemonSet/shop-prod", "edge"),
            Some("8"),
            shown.as_ref().map(fingerprint),
            &what
        ));

        let before = shown_images(Some(&cached(&[sidecar, image("api", OLD)])), &wanted);
        assert!(
            unseen.needs_write(
                ("DaemonSet/shop-prod", "edge"),
                Some("7"),
                before.as_ref().map(fingerprint),
                &what
            ),
            "the store shows the old image: sent"
        );
        assert_eq!(
            shown_images(None, &wanted),
            None,
            "not cached: nothing shown"
        );
        assert_eq!(
            shown_images(Some(&cached(&[image("web", NEW)])), &wanted),
            None,
            "no such container"
        );
    }
}
