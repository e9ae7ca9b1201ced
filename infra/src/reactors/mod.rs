//! The reactors: what acts on the world from the log, each on the one loop
//! of `runtime::reactor` — webhook delivery, and push sending with its
//! scheduled launches.

pub mod push;
pub mod webhooks;
