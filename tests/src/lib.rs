//! The end-to-end harness: a real streamedge server (sidecar supervising Debian's nginx with
//! nginx-rtmp and the built module) in a temp folder on free loopback ports, real ffmpeg
//! publishers, and teardown that leaves no process behind even when a test fails.
//!
//! One file per stand-in or fixture; everything is re-exported here, so tests name it
//! `streamedge_tests::X`.

mod channel;
mod disk;
mod dns;
mod hooks;
mod http;
mod icecast;
mod ionos;
mod media;
mod metrics;
mod netns;
mod nginx;
mod paths;
mod pebble;
mod player;
mod ports;
mod processes;
mod public;
mod publisher;
mod rtmp_sink;
mod s3;
mod server;
mod telegram;
mod wait;

pub use channel::{LiveChannel, CHANNEL_TITLE};
pub use disk::SmallDisk;
pub use dns::TestDns;
pub use hooks::HookReceiver;
pub use http::{
    callback, http_get, http_get_once, raw_exchange, raw_get, raw_request, statuses, Response,
};
pub use icecast::icecast_source;
pub use ionos::{Seen, Standin, StandinState};
pub use media::{ffmpeg_decodes, ffprobe_streams, make_vod_item, media_dir, MediaServer};
pub use metrics::metric;
pub use netns::{Host, Netns, Network};
pub use nginx::Nginx;
pub use paths::{module_path, relative_files, streamedge_bin, target_dir};
pub use pebble::{served_certificate, Pebble};
pub use player::{play_live, Fetched, Watched};
pub use ports::free_port;
pub use processes::processes_mentioning;
pub use public::PublicStandIn;
pub use publisher::Publisher;
pub use rtmp_sink::RtmpSink;
pub use s3::{S3Store, Valve, S3_BUCKET};
pub use server::{Key, Options, Server};
pub use telegram::{Call, Sent, TelegramStandin};
pub use wait::wait_for;
