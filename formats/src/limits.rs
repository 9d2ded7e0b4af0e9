//! `GET /api/limits` on nginx's internal server: what each `streamedge_limit_zone` has
//! counted since nginx started (the counters live in the zone's shared memory, so every
//! worker adds to the same ones and a reload keeps them). The sidecar's `/metrics` reads it.
//!
//! ```json
//! [{"zone":"publish","requests":12,"refused":3,"bans":1,"failures":4}]
//! ```

use serde::{Deserialize, Serialize};

/// One zone's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneStats {
    pub zone: String,
    /// Requests the zone checked.
    pub requests: u64,
    /// Requests it refused (over the rate or banned); dry runs refuse nothing.
    pub refused: u64,
    /// Bans it started.
    pub bans: u64,
    /// Refusals made by others that count towards a ban (wrong stream keys).
    pub failures: u64,
}

/// The answer: one line.
pub fn to_json(zones: &[ZoneStats]) -> String {
    let mut out = serde_json::to_string(zones).expect("plain data serializes");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sidecar_reads_what_the_module_writes() {
        let zones = vec![ZoneStats {
            zone: "publish".into(),
            requests: 12,
            refused: 3,
            bans: 1,
            failures: 4,
        }];
        let text = to_json(&zones);
        assert_eq!(
            text,
            "[{\"zone\":\"publish\",\"requests\":12,\"refused\":3,\"bans\":1,\"failures\":4}]\n"
        );
        assert_eq!(
            serde_json::from_str::<Vec<ZoneStats>>(&text).unwrap(),
            zones
        );
    }
}
