//! The canary Deployment beside a target Deployment, during a canary step
//! (`rollout.steps`): the stable pod template with the release's images, its pods
//! labelled `greenlight.dev/track: canary` (in its own selector too), and the step's share
//! of the stable replicas, rounded up. Greenlight creates it by server-side apply and owns
//! all of it; the stable Deployment is not touched.

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Map, Value, json};

use crate::engine::{
    ContainerImage,
    canary::{canary_name, canary_replicas},
};

/// The label that tells canary pods from stable ones.
pub const TRACK_LABEL: &str = "greenlight.dev/track";
/// Names the Deployment a canary stands beside.
pub const CANARY_OF_LABEL: &str = "greenlight.dev/canary-of";

/// Whether a label is how Argo CD or Flux tracks the objects it applied. The canary is
/// not in Git: carrying one, it would count as theirs (and Argo CD's label tracking would
/// prune it).
fn is_gitops_tracking(key: &str) -> bool {
    key == "app.kubernetes.io/instance"
        || [
            "argocd.argoproj.io/",
            "kustomize.toolkit.fluxcd.io/",
            "helm.toolkit.fluxcd.io/",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix))
}

/// The canary of `stable` running `images` with `weight` percent of its replicas, as the
/// server-side-apply body; or why `stable` cannot have one.
pub fn manifest(
    stable: &Deployment,
    images: &[ContainerImage],
    weight: u32,
) -> Result<Value, String> {
    let name = stable.metadata.name.as_deref().unwrap_or_default();
    let spec = stable
        .spec
        .as_ref()
        .ok_or_else(|| format!("Deployment {name} has no spec"))?;
    let mut template = serde_json::to_value(&spec.template).map_err(|e| e.to_string())?;
    let containers = template
        .pointer_mut("/spec/containers")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| format!("Deployment {name} has no containers"))?;
    for want in images {
        let container = containers
            .iter_mut()
            .find(|c| c["name"] == want.container.as_str())
            .ok_or_else(|| format!("Deployment {name} has no container {:?}", want.container))?;
        container["image"] = json!(want.image);
    }
    let track = |labels: Option<&Value>| -> Value {
        let mut labels: Map<String, Value> = labels
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        labels.insert(TRACK_LABEL.into(), json!("canary"));
        Value::Object(labels)
    };
    template["metadata"]["labels"] = track(template.pointer("/metadata/labels"));
    let mut selector = serde_json::to_value(&spec.selector).map_err(|e| e.to_string())?;
    selector["matchLabels"] = track(selector.get("matchLabels"));
    let mut labels = track(
        serde_json::to_value(&stable.metadata.labels)
            .ok()
            .as_ref()
            .filter(|l| l.is_object()),
    );
    if let Some(labels) = labels.as_object_mut() {
        labels.retain(|key, _| !is_gitops_tracking(key));
    }
    labels[CANARY_OF_LABEL] = json!(name);
    labels["app.kubernetes.io/managed-by"] = json!("greenlight");
    let mut canary = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": canary_name(name),
            "namespace": stable.metadata.namespace,
            "labels": labels,
        },
        "spec": {
            "replicas": canary_replicas(weight, spec.replicas.unwrap_or(1)),
            "selector": selector,
            "template": template,
        },
    });
    if let Some(deadline) = spec.progress_deadline_seconds {
        canary["spec"]["progressDeadlineSeconds"] = json!(deadline);
    }
    Ok(canary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stable() -> Deployment {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "shop-prod",
                         "labels": {"app": "api", "app.kubernetes.io/instance": "shop-prod",
                                    "kustomize.toolkit.fluxcd.io/name": "shop"},
                         "resourceVersion": "7", "uid": "u-1"},
            "spec": {
                "replicas": 8,
                "progressDeadlineSeconds": 300,
                "selector": {"matchLabels": {"app": "api"}},
                "template": {
                    "metadata": {"labels": {"app": "api"}},
                    "spec": {"containers": [
                        {"name": "api", "image": "registry.example/api:1.4.1", "ports": [{"containerPort": 8080}]},
                        {"name": "proxy", "image": "envoy:1.30"}
                    ]}
                }
            },
            "status": {"replicas": 8}
        }))
        .unwrap()
    }

    #[test]
    fn the_canary_is_the_stable_template_with_the_release_images_its_track_and_its_share() {
        let images = [ContainerImage {
            container: "api".into(),
            image: "registry.example/api:1.4.2".into(),
        }];
        assert_eq!(
            manifest(&stable(), &images, 10).unwrap(),
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "api-canary",
                    "namespace": "shop-prod",
                    "labels": {
                        "app": "api",
                        "greenlight.dev/track": "canary",
                        "greenlight.dev/canary-of": "api",
                        "app.kubernetes.io/managed-by": "greenlight",
                    },
                },
                "spec": {
                    "replicas": 1,
                    "progressDeadlineSeconds": 300,
                    "selector": {"matchLabels": {"app": "api", "greenlight.dev/track": "canary"}},
                    "template": {
                        "metadata": {"labels": {"app": "api", "greenlight.dev/track": "canary"}},
                        "spec": {"containers": [
                            {"name": "api", "image": "registry.example/api:1.4.2", "ports": [{"containerPort": 8080}]},
                            {"name": "proxy", "image": "envoy:1.30"}
                        ]}
                    }
                },
            })
        );
    }

    #[test]
    fn the_share_of_replicas_is_rounded_up_and_never_zero() {
        assert_eq!(canary_replicas(10, 8), 1);
        assert_eq!(canary_replicas(50, 8), 4);
        assert_eq!(canary_replicas(51, 8), 5);
        assert_eq!(canary_replicas(99, 3), 3);
        assert_eq!(canary_replicas(10, 0), 1);
    }

    #[test]
    fn a_container_the_stable_deployment_lacks_is_an_error() {
        let images = [ContainerImage {
            container: "worker".into(),
            image: "worker:2".into(),
        }];
        assert_eq!(
            manifest(&stable(), &images, 10),
            Err("Deployment api has no container \"worker\"".into())
        );
    }
}
