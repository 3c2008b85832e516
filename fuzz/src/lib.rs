//! Entry points shared by the fuzz targets and the CI smoke test.
pub mod targets;
