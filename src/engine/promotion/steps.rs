//! The Job steps of a stage: pre-deploy Jobs and verification tests.

use crate::{
    engine::{
        context::Ctx,
        decision::Action,
        jobs::{JobKey, JobPurpose},
        snapshot::JobOutcome,
    },
    validation::{ValidEnvironment, ValidJob},
};

/// Where one Job step stands.
pub(super) enum StepState {
    Succeeded,
    Failed(String),
    TimedOut,
    Running,
}

/// Runs one Job step of a promotion that started at `started`: asks for the Job if it does
/// not exist, deletes it when it outlives its timeout, and wakes the engine at the deadline.
pub(super) fn run(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    release: &str,
    purpose: JobPurpose,
    step: &ValidJob,
    attempt: u32,
    started: jiff::Timestamp,
) -> StepState {
    let key = JobKey {
        pipeline: &ctx.snap.pipeline.name,
        environment: &env.name,
        release,
        purpose,
        step: &step.name,
        attempt,
    };
    let name = key.name();
    let deadline = Ctx::after(started, step.timeout);
    match ctx
        .job(env.cluster.as_deref(), &env.namespace, &name)
        .map(|j| (j.outcome, j.message.clone()))
    {
        Some((JobOutcome::Succeeded, _)) => StepState::Succeeded,
        Some((JobOutcome::Failed, message)) => {
            StepState::Failed(message.unwrap_or_else(|| "see the Job's logs".into()))
        }
        _ if ctx.now >= deadline => {
            ctx.actions.push(Action::DeleteJob {
                cluster: env.cluster.clone(),
                namespace: env.namespace.clone(),
                name,
            });
            StepState::TimedOut
        }
        observed => {
            if observed.is_none() {
                ctx.create_job(&key, env.cluster.as_deref(), &env.namespace, step);
            }
            ctx.wake_at(deadline);
            StepState::Running
        }
    }
}
