//! Canaries: during a canary step, a `<name>-canary` Deployment beside each target
//! Deployment runs the release with a share of the replicas. With `rollout.gatewayAPI`,
//! an HTTPRoute's weights also send the step's share of traffic to the canary's Service,
//! once the canary is ready. Outside a canary step, a canary that still exists is
//! garbage: its traffic goes back to the stable Service first, then it is deleted.

use std::collections::BTreeMap;

use super::{
    ContainerImage, RouteRef, RouteView, Snapshot, WorkloadRef, WorkloadView,
    decision::{Action, CanaryRoute},
    targets::{Desired, Targets},
};
use crate::validation::{ValidEnvironment, ValidGatewayRoute};

/// The name of the canary Deployment beside the Deployment `stable`.
pub fn canary_name(stable: &str) -> String {
    format!("{stable}-canary")
}

/// The canary beside `stable`.
pub fn canary_of(stable: &WorkloadRef) -> WorkloadRef {
    WorkloadRef {
        name: canary_name(&stable.name),
        ..stable.clone()
    }
}

/// The canary's replicas at `weight` percent of `stable_replicas`: `ceil(weight × stable
/// replicas / 100)`, at least one pod.
pub fn canary_replicas(weight: u32, stable_replicas: i32) -> i32 {
    let stable = i64::from(stable_replicas.max(0));
    let share = (i64::from(weight) * stable + 99) / 100;
    i32::try_from(share.max(1)).unwrap_or(i32::MAX)
}

/// The images each target workload's canary runs, by target workload.
fn images_by_workload(
    targets: &Targets<'_>,
    desired: &Desired,
) -> BTreeMap<WorkloadRef, Vec<ContainerImage>> {
    targets
        .images_by_workload(desired)
        .into_iter()
        .map(|(workload, (images, _))| (workload, images))
        .collect()
}

/// `SetCanary` for every target workload. Asked at every decision of a canary step (it
/// is idempotent), so a restart between the status write and the change still sets the
/// step's share.
pub fn set_canaries(targets: &Targets<'_>, desired: &Desired, weight: u32) -> Vec<Action> {
    images_by_workload(targets, desired)
        .into_iter()
        .map(|(stable, images)| Action::SetCanary {
            stable,
            images,
            weight,
        })
        .collect()
}

/// Where the canaries of a step stand.
#[derive(Debug, PartialEq)]
pub enum Readiness {
    /// Every canary runs the release, rolled out and available.
    Ready,
    /// Not yet: what it waits for.
    Waiting(String),
    /// A canary's rollout failed (its Deployment's progress deadline).
    Failed(String),
}

/// Whether every target's canary runs `desired` with its share (`weight` percent) of the
/// stable replicas, rolled out and available. The share is checked too: a canary ready at
/// the step before is not ready for this one until it has scaled.
pub fn readiness(
    observed: &[WorkloadView],
    targets: &Targets<'_>,
    desired: &Desired,
    weight: u32,
) -> Readiness {
    for (stable, images) in images_by_workload(targets, desired) {
        let canary = canary_of(&stable);
        let Some(view) = observed.iter().find(|w| w.is_ref(&canary)) else {
            return Readiness::Waiting(format!("creating canary {canary}"));
        };
        let share = observed
            .iter()
            .find(|w| w.is_ref(&stable))
            .and_then(|w| w.replicas)
            .map(|r| canary_replicas(weight, r));
        if let Some(want) = share.filter(|want| view.replicas != Some(*want)) {
            return Readiness::Waiting(format!("canary {canary} scales to {want} replicas"));
        }
        if images
            .iter()
            .any(|want| view.image_of(&want.container) != Some(want.image.as_str()))
        {
            return Readiness::Waiting(format!("canary {canary} takes the release's images"));
        }
        if let Some(reason) = view.failure() {
            return Readiness::Failed(format!("canary {canary}: {reason}"));
        }
        if !view.rolled_out() || !view.available {
            return Readiness::Waiting(format!("canary {canary} rolls out"));
        }
    }
    Readiness::Ready
}

/// `DeleteCanary` for every target whose canary still exists (each once the
/// environment's route, if any, sends it nothing).
pub fn delete_canaries(
    observed: &[WorkloadView],
    targets: &Targets<'_>,
    env: &ValidEnvironment,
) -> Vec<Action> {
    let route = route_of(env).map(|(route, gateway)| CanaryRoute {
        route,
        stable_service: gateway.stable_service.clone(),
        canary_service: gateway.canary_service.clone(),
    });
    let mut stables: Vec<WorkloadRef> = targets
        .workloads()
        .iter()
        .map(|t| t.workload.reference())
        .collect();
    stables.sort();
    stables.dedup();
    stables
        .into_iter()
        .filter(|stable| {
            let canary = canary_of(stable);
            observed.iter().any(|w| w.is_ref(&canary))
        })
        .map(|stable| Action::DeleteCanary {
            stable,
            route: route.clone(),
        })
        .collect()
}

/// The HTTPRoute of an environment that splits traffic by weight, and its two Services.
pub fn route_of(env: &ValidEnvironment) -> Option<(RouteRef, &ValidGatewayRoute)> {
    let gateway = env.rollout.as_ref()?.gateway_api.as_ref()?;
    let route = RouteRef {
        cluster: env.cluster.clone(),
        namespace: env.namespace.clone(),
        name: gateway.http_route.clone(),
    };
    Some((route, gateway))
}

fn set_weights(route: &RouteRef, gateway: &ValidGatewayRoute, weight: u32) -> Action {
    Action::SetRouteWeights {
        route: route.clone(),
        stable_service: gateway.stable_service.clone(),
        canary_service: gateway.canary_service.clone(),
        weight,
    }
}

/// Whether the environment's route sends `weight` percent to the canary (and the rest to
/// the stable Service) in every rule that names both; if not, the action that does it.
/// Asked once the canaries are ready, so traffic never reaches a canary without pods.
pub fn traffic(
    routes: &[RouteView],
    env: &ValidEnvironment,
    weight: u32,
) -> (Readiness, Option<Action>) {
    let Some((route, gateway)) = route_of(env) else {
        return (Readiness::Ready, None);
    };
    let Some(view) = routes.iter().find(|r| r.route == route) else {
        return (Readiness::Waiting(format!("{route} is not found")), None);
    };
    let split = view.split(&gateway.stable_service, &gateway.canary_service);
    if split.is_empty() {
        let why = format!(
            "{route} has no rule whose backendRefs name both Service {} and Service {}",
            gateway.stable_service, gateway.canary_service
        );
        return (Readiness::Waiting(why), None);
    }
    if split.iter().all(|&s| s == (100 - weight, weight)) {
        return (Readiness::Ready, None);
    }
    let what = format!(
        "{route} sends {weight}% to Service {}",
        gateway.canary_service
    );
    (
        Readiness::Waiting(what),
        Some(set_weights(&route, gateway, weight)),
    )
}

/// Outside a canary step: the action that sends the environment's route traffic back to
/// the stable Service, while a rule still gives the canary a share. The canaries stay
/// until the route is seen without it.
pub fn withdraw_traffic(routes: &[RouteView], env: &ValidEnvironment) -> Option<Action> {
    let (route, gateway) = route_of(env)?;
    let view = routes.iter().find(|r| r.route == route)?;
    view.split(&gateway.stable_service, &gateway.canary_service)
        .iter()
        .any(|&(_, canary)| canary > 0)
        .then(|| set_weights(&route, gateway, 0))
}

/// What a deleted Pipeline leaves behind in `snap`: each environment's canary traffic
/// (sent back to the stable Service first) and its canaries. Nothing waits for the route
/// to be seen without the canary's share, since nothing decides about this Pipeline again:
/// each deletion checks the live route itself (a share the cache has not shown yet, the
/// step's own change in flight, goes back first).
pub fn left_behind(snap: &Snapshot) -> Vec<Action> {
    let Some(pipeline) = crate::validation::validate_pipeline(&snap.pipeline.spec).0 else {
        return Vec::new();
    };
    let mut actions = Vec::new();
    for env in &pipeline.environments {
        actions.extend(withdraw_traffic(&snap.routes, env));
        if let Ok(targets) = Targets::resolve(env, snap) {
            actions.extend(delete_canaries(&snap.workloads, &targets, env));
        }
    }
    actions
}
