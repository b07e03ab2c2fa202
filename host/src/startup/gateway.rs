//! The gateway's part of the host: webhooks in, JetStream out.
use crate::{
    config::HostConfig,
    gateway::{self, Gateway, GatewayMetrics},
    plugins::PluginRuntime,
};
use async_nats::jetstream;
use axum::Router;
use events_common::service::Service;
use std::sync::Arc;

/// The webhook routes.
pub(super) fn router(
    config: &HostConfig,
    service: &Service,
    client: &async_nats::Client,
    js: &jetstream::Context,
    plugins: &PluginRuntime,
) -> prometheus::Result<Router> {
    let max_payload = client.server_info().max_payload;
    let gw = Gateway {
        js: js.clone(),
        plugins: plugins.clone(),
        cfg: config.gateway.clone(),
        nats: config.nats.clone(),
        metrics: GatewayMetrics::new(&service.registry)?,
        health: service.health.clone(),
        // A slice stays under the server's max_payload with room for
        // headers; one event must fit in a slice alone.
        max_event_bytes: max_payload.saturating_sub(4096).max(1024) - crate::wire::FRAME_OVERHEAD,
        inflight: Gateway::inflight_budget(&config.gateway),
        stop: service.stop_token(),
    };
    Ok(gateway::router(Arc::new(gw)))
}
