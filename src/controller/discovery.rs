//! Watches of kinds that CRDs add (Gateway API HTTPRoutes, Argo CD Applications, Flux
//! Kustomizations): started once the API server serves them. A kind not served when the
//! controller starts is asked for again every so often, so installing the Gateway API or
//! Argo CD after Greenlight needs no restart.

use std::time::Duration;

use futures::{StreamExt, stream::BoxStream};
use kube::{
    Client,
    runtime::{reflector::store::Writer, watcher},
};

use super::reconcile::backoff;

/// How often a kind the API server does not serve is asked for again.
pub const REDISCOVER: Duration = Duration::from_secs(60);

/// The stream `watch` makes of `writer`, once the API server serves `plural` in
/// `group_version`. Until then the store is ready and empty (`absent` says what that means,
/// once), and the API server is asked again every `every`.
pub fn when_served<K, T>(
    client: Client,
    (group_version, plural): (String, &'static str),
    every: Duration,
    absent: String,
    mut writer: Writer<K>,
    watch: impl FnOnce(Writer<K>) -> BoxStream<'static, T> + Send + 'static,
) -> BoxStream<'static, T>
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
    T: Send + 'static,
{
    futures::stream::once(async move {
        let mut waited = false;
        while !served(&client, &group_version, plural).await {
            if !waited {
                tracing::info!("the API server does not serve {group_version} {plural}: {absent}; asking again every {every:?}");
                writer.apply_watcher_event(&watcher::Event::Init);
                writer.apply_watcher_event(&watcher::Event::InitDone);
                waited = true;
            }
            tokio::time::sleep(every).await;
        }
        if waited {
            tracing::info!("the API server serves {group_version} {plural} now: watching them");
        }
        watch(writer)
    })
    .flatten()
    .boxed()
}

/// Whether the API server serves `plural` in `group_version` (a CRD's kind): asked until it
/// answers (yes, or not found).
async fn served(client: &Client, group_version: &str, plural: &str) -> bool {
    let mut failures = 0;
    loop {
        match client.list_api_group_resources(group_version).await {
            Ok(list) => return list.resources.iter().any(|r| r.name == plural),
            Err(kube::Error::Api(status)) if status.code == 404 => return false,
            // Refused (403, say): asking again at once cannot help, and waiting would keep
            // the controller from ever being ready.
            Err(kube::Error::Api(status))
                if (400..500).contains(&status.code) && status.code != 429 =>
            {
                tracing::warn!(code = status.code, message = %status.message, "cannot ask whether {group_version} {plural} are served; they are not watched for now");
                return false;
            }
            Err(error) => {
                failures += 1;
                let delay: Duration = backoff(failures);
                tracing::warn!(%error, ?delay, "cannot ask whether {group_version} {plural} are served; asking again");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
