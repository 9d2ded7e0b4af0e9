//! DNS-01 through IONOS: the `_acme-challenge` TXT records made with the `[ddns]` key through
//! the records API dynamic DNS speaks, watched until the zone's name servers answer them, and
//! removed afterwards. What was made is written to `DATA/acme/dns-records.json` (0600) before
//! the CA is told, so records a killed sidecar left are removed at the next issuance.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use streamedge_acme::{DnsFuture, TxtRecord, TxtRecords};

use crate::config::Config;
use crate::ddns::ionos::{txt_text, zone_for, Client};

/// A record made (or about to be: no id yet) at IONOS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Made {
    zone_id: String,
    name: String,
    value: String,
    #[serde(default)]
    id: Option<String>,
}

/// The IONOS side of DNS-01.
pub struct Ionos {
    client: Client,
    nameservers: Vec<String>,
    timeout: Duration,
    ttl: u32,
    ledger: PathBuf,
}

impl Ionos {
    /// From `[ddns]` (key, API) and `[acme]` (where and how long to watch).
    pub fn new(config: &Config) -> Result<Ionos> {
        let d = config.ddns.as_ref().ok_or_else(|| {
            anyhow::anyhow!("DNS-01 needs the IONOS API key of [ddns] (api_key or api_key_file)")
        })?;
        Ok(Ionos {
            client: Client::new(&d.api_base, &d.key()?),
            nameservers: config.acme.nameservers.clone(),
            timeout: config.acme.propagation_timeout,
            ttl: d.ttl,
            ledger: config.layout().acme_dns_records(),
        })
    }

    fn load(&self) -> Vec<Made> {
        std::fs::read_to_string(&self.ledger)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    fn save(&self, made: &[Made]) -> Result<(), String> {
        if made.is_empty() {
            return match std::fs::remove_file(&self.ledger) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("cannot remove {}: {e}", self.ledger.display()))
                }
                _ => Ok(()),
            };
        }
        let text = serde_json::to_string_pretty(made).expect("records serialize") + "\n";
        crate::fsutil::write_atomic(&self.ledger, text.as_bytes(), 0o600, None)
            .map_err(|e| format!("{e:#}"))
    }

    async fn create(&self, records: &[TxtRecord]) -> Result<(), String> {
        let zones = self
            .client
            .zones()
            .await
            .map_err(|e| format!("cannot list the IONOS zones: {e}"))?;
        let mut made = self.load();
        let start = made.len();
        for r in records {
            let zone = zone_for(&zones, &r.name).ok_or_else(|| {
                let names: Vec<&str> = zones.iter().map(|z| z.name.as_str()).collect();
                format!(
                    "no IONOS zone holds \"{}\" (the key's zones: {})",
                    r.name,
                    names.join(", ")
                )
            })?;
            made.push(Made {
                zone_id: zone.id.clone(),
                name: r.name.clone(),
                value: r.value.clone(),
                id: None,
            });
        }
        // Written before they exist: a sidecar killed during the request still finds them.
        self.save(&made)?;
        let zone_ids: std::collections::BTreeSet<String> =
            made[start..].iter().map(|m| m.zone_id.clone()).collect();
        for zone_id in zone_ids {
            let pairs: Vec<(&str, &str)> = made[start..]
                .iter()
                .filter(|m| m.zone_id == zone_id)
                .map(|m| (m.name.as_str(), m.value.as_str()))
                .collect();
            let created = self
                .client
                .create_records(&zone_id, "TXT", &pairs, self.ttl)
                .await
                .map_err(|e| format!("cannot create TXT \"{}\" at IONOS: {e}", pairs[0].0))?;
            for m in made[start..].iter_mut().filter(|m| m.zone_id == zone_id) {
                m.id = created
                    .iter()
                    .find(|c| c.name == m.name && txt_text(&c.content) == m.value)
                    .map(|c| c.id.clone());
            }
            self.save(&made)?;
        }
        let expected: Vec<(String, String)> = records
            .iter()
            .map(|r| (r.name.clone(), r.value.clone()))
            .collect();
        crate::dns::wait_for_txt(&self.nameservers, &expected, self.timeout)
            .await
            .map_err(|e| format!("{e:#}"))
    }

    /// Deletes records made; those that could not be deleted stay in the ledger.
    async fn delete(&self, which: impl Fn(&Made) -> bool) -> Result<(), String> {
        let (gone, mut kept): (Vec<Made>, Vec<Made>) = self.load().into_iter().partition(which);
        let mut errors = Vec::new();
        for m in gone {
            match self.delete_one(&m).await {
                Ok(()) => tracing::info!("removed TXT \"{}\" at IONOS", m.name),
                Err(e) => {
                    errors.push(format!("cannot remove TXT \"{}\" at IONOS: {e}", m.name));
                    kept.push(m);
                }
            }
        }
        self.save(&kept)?;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; ") + " (removed at the next issuance)")
        }
    }

    async fn delete_one(&self, m: &Made) -> Result<(), crate::ddns::ionos::ApiError> {
        if let Some(id) = &m.id {
            return self.client.delete_record(&m.zone_id, id).await;
        }
        // Killed before IONOS said which ids it gave: found by name and text.
        for r in self.client.records(&m.zone_id, &m.name, "TXT").await? {
            if txt_text(&r.content) == m.value {
                self.client.delete_record(&m.zone_id, &r.id).await?;
            }
        }
        Ok(())
    }

    /// Removes what an earlier issuance left (a killed sidecar, IONOS failing a delete).
    pub async fn remove_leftovers(&self) -> Result<(), String> {
        if self.load().is_empty() {
            return Ok(());
        }
        tracing::info!("removing DNS-01 records an earlier issuance left");
        self.delete(|_| true).await
    }
}

impl TxtRecords for Ionos {
    fn publish<'a>(&'a self, records: &'a [TxtRecord]) -> DnsFuture<'a> {
        Box::pin(self.create(records))
    }

    fn remove<'a>(&'a self, records: &'a [TxtRecord]) -> DnsFuture<'a> {
        Box::pin(self.delete(move |m| {
            records
                .iter()
                .any(|r| r.name == m.name && r.value == m.value)
        }))
    }
}
