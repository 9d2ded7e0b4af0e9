//! A stand-in for a public server: an address outside every private range, in a namespace.

use crate::netns::Netns;

/// A stand-in for a public server: an address outside every private range (100.128.0.1,
/// just above carrier-grade NAT) on the loopback of a network namespace the test creates.
/// What runs inside [`PublicStandIn::run`] (the test's servers, `streamedge run`, nginx,
/// yt-dlp) lives in that namespace, so the address never exists on this machine itself.
pub struct PublicStandIn(Netns);

impl PublicStandIn {
    pub const IP: &'static str = "100.128.0.1";

    pub fn new() -> PublicStandIn {
        PublicStandIn(Netns::new(&[&format!("{}/32", Self::IP)]))
    }

    /// Runs `f` inside the namespace (see [`Netns::run`]).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.0.run(f)
    }
}

impl Default for PublicStandIn {
    fn default() -> Self {
        PublicStandIn::new()
    }
}
