//! The reporter's integration tests, one binary: each module starts the app
//! on a fresh database (`support`) and checks one part of its behaviour.
mod dead_letters;
mod demographics_report;
mod events_report;
mod ops;
mod replica;
mod revenue_report;
mod rollups_property;
mod support;
mod validation;
