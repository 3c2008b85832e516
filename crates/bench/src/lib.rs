//! `gatehouse-bench`: a load generator for gatehoused with a same-run WebSocket echo baseline.
//!
//! The servers under test run in child processes (this binary re-executed), the load comes
//! from raw tokio-tungstenite connections with one call in flight each, and every scenario is
//! bounded in calls and in time. See `docs/BENCHMARKS.md`.

pub mod child;
pub mod load;
pub mod report;
pub mod scenarios;
