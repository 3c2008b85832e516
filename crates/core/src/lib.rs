//! The authentication domain, pure.
//!
//! Nothing here opens a socket, runs SQL, reads the wall clock or the OS random number
//! generator: time and randomness are passed in through [`Clock`] and [`Entropy`], so TTLs,
//! lockouts and TOTP windows are plain unit tests.

pub mod clock;
pub mod model;
pub mod origin;

pub use clock::{Clock, Entropy};
pub mod apikey;
pub mod password;
pub mod query;
pub mod roles;
pub mod scram;
pub mod token;
pub mod totp;
