//! The RBAC the controller needs: one table, the source for the README, the chart's
//! Roles (checked by a test over the rendered chart) and a test that records every
//! request the controller makes and finds each one here.

/// Where a permission must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace the controller watches (the cluster, or `--namespace`).
    Watched,
    /// The Lease's namespace only (the controller's own).
    Lease,
}

/// Verbs on one resource of one API group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    /// API group; `""` is the core group.
    pub group: &'static str,
    /// Resource, with `/subresource` where one is written.
    pub resource: &'static str,
    /// The verbs, as RBAC names them.
    pub verbs: &'static [&'static str],
    /// Where it must hold.
    pub scope: Scope,
    /// Why, for the README and the chart's comments.
    pub why: &'static str,
}

/// The permissions that do not depend on the workload kinds.
const FIXED: &[Permission] = &[
    Permission {
        group: "greenlight.dev",
        resource: "pipelines",
        verbs: &["get", "list", "watch"],
        scope: Scope::Watched,
        why: "the watches",
    },
    Permission {
        group: "greenlight.dev",
        resource: "releases",
        verbs: &["get", "list", "watch"],
        scope: Scope::Watched,
        why: "the watches",
    },
    Permission {
        group: "greenlight.dev",
        resource: "approvals",
        verbs: &["get", "list", "watch"],
        scope: Scope::Watched,
        why: "the watches",
    },
    Permission {
        group: "greenlight.dev",
        resource: "pipelines/status",
        verbs: &["patch"],
        scope: Scope::Watched,
        why: "status by server-side apply",
    },
    Permission {
        group: "greenlight.dev",
        resource: "releases/status",
        verbs: &["patch"],
        scope: Scope::Watched,
        why: "status by server-side apply",
    },
    Permission {
        group: "greenlight.dev",
        resource: "approvals/status",
        verbs: &["patch"],
        scope: Scope::Watched,
        why: "status by server-side apply",
    },
    Permission {
        group: "apps",
        resource: "deployments",
        verbs: &["get", "create", "delete"],
        scope: Scope::Watched,
        why: "canary Deployments (rollout.steps): read the stable one, create and delete its canary",
    },
    super::routes::PERMISSION,
    Permission {
        group: "batch",
        resource: "jobs",
        verbs: &["list", "watch", "create", "delete"],
        scope: Scope::Watched,
        why: "test and pre-deploy Jobs",
    },
    Permission {
        group: "",
        resource: "pods",
        verbs: &["list"],
        scope: Scope::Watched,
        why: "a finished test Job's termination message, for the status",
    },
    Permission {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        scope: Scope::Watched,
        why: "Events (repeats become a series)",
    },
    Permission {
        group: "",
        resource: "secrets",
        verbs: &["get"],
        scope: Scope::Watched,
        why: "the kubeconfig Secrets of environments in other clusters and the credentials of GitOps repositories (read by name, never listed)",
    },
    Permission {
        group: "argoproj.io",
        resource: "applications",
        verbs: &["get", "list", "watch"],
        scope: Scope::Watched,
        why: "GitOps mode: whether an Argo CD Application synced a commit (target.git.argoCDApplication)",
    },
    Permission {
        group: "kustomize.toolkit.fluxcd.io",
        resource: "kustomizations",
        verbs: &["get", "list", "watch"],
        scope: Scope::Watched,
        why: "GitOps mode: whether a Flux Kustomization applied a commit (target.git.fluxKustomization)",
    },
    Permission {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "update"],
        scope: Scope::Lease,
        why: "leader election",
    },
];

/// Every permission the controller uses, and no other: Greenlight's own objects, then one
/// entry per workload kind (from its driver), then Jobs, Pods, Events and the Lease.
pub fn required() -> Vec<Permission> {
    let (own, rest) = FIXED.split_at(
        FIXED
            .iter()
            .take_while(|p| p.group == "greenlight.dev")
            .count(),
    );
    own.iter()
        .copied()
        .chain(super::workloads::drivers().map(|d| d.permission()))
        .chain(rest.iter().copied())
        .collect()
}

/// What the controller needs in each target namespace of another cluster (granted by the
/// `greenlight-remote` chart there): the target kinds, canary Deployments and HTTPRoutes,
/// Jobs and their Pods. Nothing cluster-wide, and no Greenlight objects: those live in the
/// controller's cluster.
pub fn remote() -> Vec<Permission> {
    let canaries_jobs_and_pods = FIXED
        .iter()
        .filter(|p| {
            p.group == "apps"
                || p.group == "batch"
                || p.resource == "pods"
                || p.resource == "httproutes"
        })
        .copied();
    super::workloads::drivers()
        .map(|d| d.permission())
        .chain(canaries_jobs_and_pods)
        .collect()
}

/// What the controller needs in each namespace of another cluster that holds the Argo CD
/// Applications or Flux Kustomizations of its GitOps environments (the chart's
/// `syncNamespaces`, often `argocd` or `flux-system`, not a target namespace): `get` only,
/// as they are read by name there, not watched.
pub fn remote_sync() -> Vec<Permission> {
    FIXED
        .iter()
        .filter(|p| p.resource == "applications" || p.resource == "kustomizations")
        .map(|p| Permission {
            verbs: &["get"],
            ..*p
        })
        .collect()
}

/// What RBAC checks for one request: API group, resource (with subresource) and verb.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    /// API group; `""` is the core group.
    pub group: String,
    /// Resource, with `/subresource` if any.
    pub resource: String,
    /// The RBAC verb.
    pub verb: &'static str,
}

/// The RBAC attributes of a request to the API server, as the authorizer derives them
/// from the method and the path (`watch=true` makes a list a watch). `None` for paths
/// that are not resource requests (discovery, `/version`).
pub fn attributes(method: &str, path_and_query: &str) -> Option<Attributes> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _namespace, rest @ ..] if !rest.is_empty() => rest,
        rest => rest,
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, subresource] => (*resource, Some(*name), Some(*subresource)),
        _ => return None,
    };
    let watch = query
        .split('&')
        .any(|pair| pair == "watch=true" || pair == "watch=1");
    let verb = match (method, name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    let resource = match subresource {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_owned(),
    };
    Some(Attributes {
        group: group.to_owned(),
        resource,
        verb,
    })
}

/// Whether [`required`] grants a request with these attributes.
pub fn granted(attributes: &Attributes) -> bool {
    required().iter().any(|p| {
        p.group == attributes.group
            && p.resource == attributes.resource
            && p.verbs.contains(&attributes.verb)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: &str, path: &str) -> (String, String, &'static str) {
        let a = attributes(method, path).expect("a resource request");
        (a.group, a.resource, a.verb)
    }

    #[test]
    fn paths_map_to_rbac_attributes_as_the_authorizer_derives_them() {
        assert_eq!(
            attrs(
                "GET",
                "/apis/greenlight.dev/v1alpha1/pipelines?watch=true&resourceVersion=5"
            ),
            ("greenlight.dev".into(), "pipelines".into(), "watch")
        );
        assert_eq!(
            attrs("GET", "/apis/apps/v1/deployments?labelSelector=x"),
            ("apps".into(), "deployments".into(), "list")
        );
        assert_eq!(
            attrs(
                "PATCH",
                "/apis/greenlight.dev/v1alpha1/namespaces/shop/pipelines/web/status?fieldManager=greenlight"
            ),
            ("greenlight.dev".into(), "pipelines/status".into(), "patch")
        );
        assert_eq!(
            attrs(
                "GET",
                "/api/v1/namespaces/shop/pods?labelSelector=job-name%3Dx"
            ),
            ("".into(), "pods".into(), "list")
        );
        assert_eq!(
            attrs(
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/gl/leases/greenlight-controller"
            ),
            ("coordination.k8s.io".into(), "leases".into(), "update")
        );
        assert_eq!(
            attrs("DELETE", "/apis/batch/v1/namespaces/shop/jobs/t-1"),
            ("batch".into(), "jobs".into(), "delete")
        );
        assert_eq!(attributes("GET", "/version"), None);
        assert_eq!(attributes("GET", "/apis"), None);
    }

    #[test]
    fn the_table_grants_what_it_lists_and_nothing_else() {
        let patch_image = attributes("PATCH", "/apis/apps/v1/namespaces/a/deployments/web")
            .expect("a resource request");
        assert!(granted(&patch_image));
        // Deployments may be deleted (canaries; RBAC cannot narrow a verb to names with a
        // suffix), other workloads never.
        let delete_canary = attributes(
            "DELETE",
            "/apis/apps/v1/namespaces/a/deployments/web-canary",
        )
        .expect("a resource request");
        assert!(granted(&delete_canary));
        let delete_statefulset = attributes("DELETE", "/apis/apps/v1/namespaces/a/statefulsets/db")
            .expect("a resource request");
        assert!(!granted(&delete_statefulset));
        let write_spec = attributes(
            "PATCH",
            "/apis/greenlight.dev/v1alpha1/namespaces/a/pipelines/p",
        )
        .expect("a resource request");
        assert!(!granted(&write_spec), "the controller never writes a spec");
    }
}
