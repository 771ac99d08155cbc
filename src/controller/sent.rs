//! Image changes and Job creations in flight: sent, but not yet shown by the stores.
//!
//! A reconcile that runs before the watch shows our own write decides the same action
//! again (the store still has the old image, or no Job). Remembering what was sent over
//! which cached version (in an [`Unseen`](super::unseen::Unseen)) keeps it from being sent
//! twice; an entry goes when the store shows the object again.

use super::{clusters::Clusters, world::Stores};
use crate::engine::{Action, WorkloadRef};

/// An image change or Job creation, as remembered until the stores show it: the object
/// it goes to, the version of it the decision saw, and what was sent.
pub struct SentAction {
    object: (String, String),
    over: Option<String>,
    /// What was sent: (container, image) pairs, none for a Job.
    pub what: Vec<(String, String)>,
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
            Action::SetImages { workload, images } => Some(Self {
                object: workload_key(workload),
                // In another cluster, its store's version: the memo stands until that
                // store shows the write (or anything else) changed the workload.
                over: match &workload.cluster {
                    None => stores.workloads.resource_version(workload),
                    Some(cluster) => clusters
                        .stores_of(namespace, cluster, &workload.namespace)?
                        .workloads
                        .resource_version(workload),
                },
                what: images
                    .iter()
                    .map(|i| (i.container.clone(), i.image.clone()))
                    .collect(),
            }),
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
}
