//! What the streamedge nginx module decides, in plain Rust: no nginx, no I/O beyond reading
//! the keys file, time passed in. The module (`ngx-module/`) is the thin edge that feeds it
//! requests, the clock and its shared memory, and turns its answers into responses and logs.

pub mod audience;
pub mod auth;
pub mod ban;
pub mod bucket;
pub mod callback;
pub mod client;
pub mod conns;
pub mod filestamp;
pub mod hls;
pub mod keycache;
pub mod library;
pub mod limit;
pub mod origin;
pub mod registry;
pub mod safefile;
pub mod table;

#[cfg(test)]
mod props;
