//! Wire types shared by the server, the client and the shell.
//!
//! Only this crate knows the exact shapes TrueNAS puts on the wire: the JSON-RPC 2.0 and legacy
//! `/websocket` frames, extended JSON (`$date`, `$set`), the error model with its errno names,
//! and the method schemas from which both argument validation and `core.get_methods` metadata
//! are produced.

pub mod defaults;
pub mod ejson;
pub mod errno;
pub mod error;
pub mod frame;
pub mod schema;

pub use error::{ApiError, ValidationError};
