//! The filters both endpoints share, checked once and turned into SQL.
use crate::params::{self, Checker, Window};
use sqlx::{Postgres, QueryBuilder};

/// Validated filters (both endpoints).
#[derive(Debug)]
pub(super) struct Filters {
    window: Window,
    stage: Option<String>,
    source: Option<String>,
    field: Option<String>,
    plugin_version: Option<String>,
}

impl Filters {
    pub(super) fn check(
        c: &mut Checker,
        stage: Option<&str>,
        source: Option<&str>,
        field: Option<&str>,
        plugin_version: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Option<Self> {
        let window = params::window(c, from, to);
        let stage = c.optional("stage", stage, params::identifier);
        let source = c.optional("source", source, params::identifier);
        let field = c.optional("field", field, params::identifier);
        let plugin_version = c.optional("pluginVersion", plugin_version, params::identifier);
        Some(Self {
            window: window?,
            stage,
            source,
            field,
            plugin_version,
        })
    }

    /// ` AND ...` for the filters given.
    pub(super) fn push(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        if let Some(f) = self.window.from {
            qb.push(" AND received_at >= ").push_bind(f);
        }
        if let Some(t) = self.window.to {
            qb.push(" AND received_at < ").push_bind(t);
        }
        if let Some(s) = &self.stage {
            qb.push(" AND stage = ").push_bind(s.clone());
        }
        if let Some(s) = &self.source {
            qb.push(" AND source = ").push_bind(s.clone());
        }
        if let Some(f) = &self.field {
            // Containment, so the GIN index on reasons can answer it.
            qb.push(" AND reasons @> jsonb_build_array(jsonb_build_object('field', ")
                .push_bind(f.clone())
                .push("::text))");
        }
        if let Some(v) = &self.plugin_version {
            qb.push(" AND plugin_version = ").push_bind(v.clone());
        }
    }
}
