//! The public name on the edges: `ddns.edge_domains` resolve to the addresses in `ddns.edges`
//! (A and AAAA records, one per edge), while `ddns.domains` follow the home's own address.
//! Viewers reach an edge by the public name; the edges reach the origin by its own name.
//! Records mode only: a DynDNS update URL can say nothing but the caller's address.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::address::Family;
use super::ionos::{self, ApiError, Record};
use super::{rfc3339, Report, State, UpdateError};
use crate::config::Ddns;

/// What to do to a name's records of one type so that they are exactly `wanted`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Record ids to delete: addresses that are not edges, and repeats.
    pub delete: Vec<String>,
    /// Addresses to create records for.
    pub create: Vec<IpAddr>,
}

/// Compares addresses, not text: IONOS may give `2a01:4f8:0::20` back for `2a01:4f8::20`.
pub fn change(existing: &[Record], wanted: &BTreeSet<IpAddr>) -> Change {
    let mut kept = BTreeSet::new();
    let mut out = Change::default();
    for r in existing {
        match r.content.parse::<IpAddr>() {
            Ok(a) if wanted.contains(&a) && kept.insert(a) => {}
            _ => out.delete.push(r.id.clone()),
        }
    }
    out.create = wanted.difference(&kept).copied().collect();
    out
}

/// The edges of one family.
pub fn wanted(d: &Ddns, family: Family) -> BTreeSet<IpAddr> {
    d.edges
        .iter()
        .copied()
        .filter(|a| {
            matches!(
                (family, a),
                (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_))
            )
        })
        .collect()
}

fn joined(addrs: &BTreeSet<IpAddr>) -> String {
    let text: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
    text.join(" ")
}

/// One pass over the edge names: those whose DNS answer is not exactly the edges are set
/// through the API, within the request budget (what does not fit goes on at the next check).
pub(super) async fn sync(
    d: &Ddns,
    client: &ionos::Client,
    state: &mut State,
    now: u64,
    dry_run: bool,
    report: &mut Report,
) -> Result<(), ApiError> {
    let resolver =
        crate::dns::resolver(&d.nameservers).map_err(|e| ApiError::Other(format!("{e:#}")))?;
    for name in &d.edge_domains {
        for family in [Family::V4, Family::V6] {
            let kind = family.record_type();
            let wanted = wanted(d, family);
            let dns: BTreeSet<IpAddr> = super::lookup(&resolver, name, family)
                .await
                .into_iter()
                .collect();
            let key = format!("{name} {kind}");
            let want = joined(&wanted);
            if dns == wanted {
                if !wanted.is_empty() {
                    report.lines.push(format!(
                        "{name} {kind}: the edges ({want}) are in DNS already"
                    ));
                }
                state.edges_sent.remove(&key);
                continue;
            }
            let recent = state
                .edges_sent
                .get(&key)
                .is_some_and(|(sent, at)| *sent == want && now < at + d.cooldown.as_secs());
            if recent {
                report.lines.push(format!(
                    "{name} {kind}: the edges were set at {}; waiting for DNS",
                    rfc3339(state.edges_sent[&key].1)
                ));
                continue;
            }
            if dry_run {
                report.lines.push(format!(
                    "{name} {kind}: would set the edges ({want}; DNS says {:?})",
                    joined(&dns)
                ));
                continue;
            }
            match set(
                d,
                client,
                state,
                name,
                family,
                &wanted,
                now,
                &mut report.calls,
            )
            .await
            {
                Ok(()) => {
                    state.edges_sent.insert(key, (want.clone(), now));
                    report
                        .lines
                        .push(format!("{name} {kind}: set to the edges ({want})"));
                }
                Err(UpdateError::Deferred) => {
                    report.lines.push(format!(
                        "{name} {kind}: the edges wait for the next minute (IONOS allows {} requests a minute)",
                        d.requests_per_minute
                    ));
                    return Ok(());
                }
                Err(UpdateError::Failed(e)) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Makes `name`'s records of `family` exactly the edges: deletes the others, creates the
/// missing ones in one request.
#[allow(clippy::too_many_arguments)]
async fn set(
    d: &Ddns,
    client: &ionos::Client,
    state: &mut State,
    name: &str,
    family: Family,
    wanted: &BTreeSet<IpAddr>,
    now: u64,
    calls: &mut u32,
) -> Result<(), UpdateError> {
    let mut budget = |state: &mut State| state.spend(now, d.requests_per_minute, calls);
    let zone = match state.zone_ids.get(name) {
        Some(z) => z.clone(),
        None => {
            budget(state)?;
            let zones = client.zones().await.map_err(UpdateError::Failed)?;
            let zone = ionos::zone_for(&zones, name).ok_or_else(|| {
                UpdateError::Failed(ApiError::Other(format!("no IONOS zone holds \"{name}\"")))
            })?;
            state.zone_ids.insert(name.to_string(), zone.id.clone());
            zone.id.clone()
        }
    };
    let kind = family.record_type();
    budget(state)?;
    let records = client.records(&zone, name, kind).await;
    let records = records
        .inspect_err(|_| drop(state.zone_ids.remove(name)))
        .map_err(UpdateError::Failed)?;
    let change = change(&records, wanted);
    // New records first: the name never answers nothing while the change is under way.
    if !change.create.is_empty() {
        budget(state)?;
        let text: Vec<String> = change.create.iter().map(IpAddr::to_string).collect();
        let records: Vec<(&str, &str)> = text.iter().map(|t| (name, t.as_str())).collect();
        client
            .create_records(&zone, kind, &records, d.ttl)
            .await
            .map_err(UpdateError::Failed)?;
    }
    for id in &change.delete {
        budget(state)?;
        client
            .delete_record(&zone, id)
            .await
            .map_err(UpdateError::Failed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, content: &str) -> Record {
        Record {
            id: id.into(),
            name: "tv.example.org".into(),
            kind: "A".into(),
            content: content.into(),
        }
    }

    fn set(addrs: &[&str]) -> BTreeSet<IpAddr> {
        addrs.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn records_become_exactly_the_edges() {
        let wanted = set(&["81.2.69.200", "81.2.69.201"]);
        let existing = [
            rec("1", "81.2.69.142"),
            rec("2", "81.2.69.200"),
            rec("3", "81.2.69.200"),
            rec("4", "not an address"),
        ];
        assert_eq!(
            change(&existing, &wanted),
            Change {
                delete: vec!["1".into(), "3".into(), "4".into()],
                create: vec!["81.2.69.201".parse().unwrap()],
            }
        );
        let done = [rec("2", "81.2.69.200"), rec("5", "81.2.69.201")];
        assert_eq!(change(&done, &wanted), Change::default());
        // No edge of a family: every record of it goes.
        assert_eq!(change(&done, &BTreeSet::new()).delete, ["2", "5"]);
    }

    #[test]
    fn addresses_compare_as_addresses() {
        let wanted = set(&["2a01:4f8::20"]);
        assert_eq!(
            change(&[rec("1", "2a01:4f8:0:0::20")], &wanted),
            Change::default()
        );
    }

    #[test]
    fn each_family_gets_its_own_edges() {
        let d = Ddns {
            edges: vec![
                "81.2.69.200".parse().unwrap(),
                "2a01:4f8::20".parse().unwrap(),
            ],
            ..Ddns::default()
        };
        assert_eq!(wanted(&d, Family::V4), set(&["81.2.69.200"]));
        assert_eq!(wanted(&d, Family::V6), set(&["2a01:4f8::20"]));
    }
}
