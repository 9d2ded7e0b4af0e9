//! Formats shared by the nginx module and the `streamedge` sidecar. No nginx, no tokio: both
//! sides link this crate, so a format is defined once.

pub mod bucket;
pub mod keys;
pub mod layout;
pub mod library;
pub mod limits;
pub mod name;
pub mod streams;
pub mod time;
pub mod token;

#[cfg(test)]
mod props;
