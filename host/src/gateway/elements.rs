//! The body's elements: split, each envelope checked, off the async workers.
use super::{envelope, error::WebhookError};
use crate::plugins::PluginRuntime;
use bytes::Bytes;

/// One checked element of the body.
pub struct Checked {
    pub range: std::ops::Range<usize>,
    pub env: envelope::Envelope,
}

/// Splits and checks `body` on the blocking pool: parsing 25 MB is CPU work.
pub async fn check(
    body: Bytes,
    plugins: PluginRuntime,
    max_events: usize,
) -> Result<Vec<Checked>, WebhookError> {
    tokio::task::spawn_blocking(move || check_body(&body, &plugins, max_events))
        .await
        .map_err(WebhookError::Check)?
        .map_err(WebhookError::from)
}

fn check_body(
    body: &Bytes,
    plugins: &PluginRuntime,
    max_events: usize,
) -> Result<Vec<Checked>, envelope::BodyError> {
    let base = body.as_ptr() as usize;
    let sources = plugins.sources();
    let elements = envelope::split(body, max_events)?;
    Ok(elements
        .into_iter()
        .map(|raw| {
            let start = raw.get().as_ptr() as usize - base;
            Checked {
                range: start..start + raw.get().len(),
                env: envelope::check(raw, |s| sources.iter().any(|k| k == s)),
            }
        })
        .collect())
}
