//! Bringing every stored secret under the current key: values stored in the clear before sealing
//! existed are sealed, values sealed with a previous key (see *Rotation* in [`crate::sealed`])
//! are opened and sealed again with the current one. A store does it when it opens with a key,
//! and [`SecretStore::reseal_secrets`] on demand (`floe secrets reseal`), reporting what is left.
//!
//! The pass is written once for both backends, over [`AccessConn`], in one transaction of the
//! caller's. Each row is rewritten only if it is still what was read, so a concurrent change is
//! never overwritten: such a row is reported as left, and the next pass takes it. Running the pass
//! again changes nothing: it is idempotent, and replicas starting together may all run it.

use async_trait::async_trait;

use crate::access_sql::{AccessConn, Arg, Col, Value, rows, stmt};
use crate::sealed::{
    Sealer, is_secret_property, sealing_key_id, signing_key_place, warehouse_place,
};
use crate::{Properties, Result, StoreError};

/// What a pass over the stored secrets did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealReport {
    /// The id of the key everything is now sealed with.
    pub key_id: String,
    /// Values stored in the clear, now sealed.
    pub sealed: u64,
    /// Values sealed with a previous key, now sealed with the current one.
    pub resealed: u64,
    /// Values still not sealed with the current key, each as a line naming where it is and why
    /// (sealed with a key this server does not have, or changed meanwhile), never the value.
    pub left: Vec<String>,
}

/// The store's secrets as a whole (see the module docs).
#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// Seals the values stored in the clear and re-seals those sealed with a previous key, in one
    /// transaction. [`StoreError::InvalidInput`] if this store has no key.
    async fn reseal_secrets(&self) -> Result<SealReport>;
}

/// What becomes of one stored value.
enum Fate {
    Keep,
    Seal(String),
    Reseal(String),
    Left(String),
}

/// What to store instead of `stored`, found at `place` (`secret`: whether a plain value there is
/// a secret to seal).
fn fate(sealer: &Sealer, place: &str, stored: &str, secret: bool) -> Result<Fate> {
    let current = sealer.key_id().unwrap_or_default();
    Ok(match sealing_key_id(stored) {
        Some(key_id) if key_id == current => Fate::Keep,
        Some(key_id) => match sealer.open(place, stored) {
            Ok(plain) => Fate::Reseal(sealer.seal(place, &plain)?),
            Err(_) if !sealer.previous_key_ids().contains(&key_id) => Fate::Left(format!(
                "{place}: sealed with secret key {key_id}, which this server does not have"
            )),
            Err(err) => Fate::Left(format!("{place}: {err}")),
        },
        None if secret => Fate::Seal(sealer.seal(place, stored.as_bytes())?),
        None => Fate::Keep,
    })
}

fn tally(report: &mut SealReport, fate: &Fate) {
    match fate {
        Fate::Seal(_) => report.sealed += 1,
        Fate::Reseal(_) => report.resealed += 1,
        Fate::Left(why) => report.left.push(why.clone()),
        Fate::Keep => {}
    }
}

/// The pass (see the module docs). Needs a key.
pub(crate) async fn seal_stored<C: AccessConn>(
    conn: &mut C,
    sealer: &Sealer,
) -> Result<SealReport, C::Error> {
    let Some(key_id) = sealer.key_id() else {
        return Err(StoreError::InvalidInput(
            "this server has no secret key to seal with (FLOE_SECRET_KEY, or a key file in \
             FLOE_SECRET_KEY_FILE / --secret-key-file)"
                .into(),
        )
        .into());
    };
    let mut report = SealReport {
        key_id: key_id.to_string(),
        ..SealReport::default()
    };
    seal_warehouses(conn, sealer, &mut report).await?;
    seal_signing_keys(conn, sealer, &mut report).await?;
    if report.sealed > 0 || report.resealed > 0 {
        tracing::info!(
            key = %report.key_id,
            sealed = report.sealed,
            resealed = report.resealed,
            "brought stored secrets under the current secret key"
        );
    }
    for why in &report.left {
        tracing::warn!(value = %why, "a stored secret is not under the current secret key");
    }
    Ok(report)
}

async fn seal_warehouses<C: AccessConn>(
    conn: &mut C,
    sealer: &Sealer,
    report: &mut SealReport,
) -> Result<(), C::Error> {
    let warehouses = conn
        .fetch(
            &stmt("SELECT name, properties FROM warehouses", []),
            &[Col::Text, Col::Text],
        )
        .await?;
    for row in warehouses {
        let [Value::Text(name), Value::Text(json)] = row.as_slice() else {
            return Err(StoreError::Internal("unexpected warehouse row".into()).into());
        };
        let properties: Properties = serde_json::from_str(json).map_err(|err| {
            StoreError::Internal(format!("corrupt properties of warehouse {name}: {err}"))
        })?;
        let mut row_report = SealReport::default();
        let mut changed = false;
        let mut new_properties = Properties::new();
        for (property, value) in properties {
            let place = warehouse_place(name, &property);
            let fate = fate(sealer, &place, &value, is_secret_property(&property))?;
            tally(&mut row_report, &fate);
            let value = match fate {
                Fate::Seal(sealed) | Fate::Reseal(sealed) => {
                    changed = true;
                    sealed
                }
                Fate::Keep | Fate::Left(_) => value,
            };
            new_properties.insert(property, value);
        }
        report.left.append(&mut row_report.left);
        if !changed {
            continue;
        }
        let new_json = serde_json::to_string(&new_properties)
            .map_err(|err| StoreError::Internal(format!("encoding properties: {err}")))?;
        let update = stmt(
            "UPDATE warehouses SET properties = ? WHERE name = ? AND properties = ?",
            [Arg::Text(&new_json), Arg::Text(name), Arg::Text(json)],
        );
        if rows(conn, update).await? > 0 {
            report.sealed += row_report.sealed;
            report.resealed += row_report.resealed;
        } else {
            report.left.push(format!(
                "warehouse {name}: changed while its secrets were being sealed; run again"
            ));
        }
    }
    Ok(())
}

async fn seal_signing_keys<C: AccessConn>(
    conn: &mut C,
    sealer: &Sealer,
    report: &mut SealReport,
) -> Result<(), C::Error> {
    let keys = conn
        .fetch(
            &stmt("SELECT kid, private_key FROM signing_keys", []),
            &[Col::Text, Col::Bytes],
        )
        .await?;
    for row in keys {
        let [Value::Text(kid), Value::Bytes(private_key)] = row.as_slice() else {
            return Err(StoreError::Internal("unexpected signing key row".into()).into());
        };
        let place = signing_key_place(kid);
        // Keys stored before sealing are raw DER, never text that reads as a sealed value.
        let fate = match std::str::from_utf8(private_key) {
            Ok(text) if sealing_key_id(text).is_some() => fate(sealer, &place, text, true)?,
            _ => Fate::Seal(sealer.seal(&place, private_key)?),
        };
        let new_key = match &fate {
            Fate::Seal(sealed) | Fate::Reseal(sealed) => sealed.clone().into_bytes(),
            Fate::Keep => continue,
            Fate::Left(why) => {
                report.left.push(why.clone());
                continue;
            }
        };
        let update = stmt(
            "UPDATE signing_keys SET private_key = ? WHERE kid = ? AND private_key = ?",
            [
                Arg::Bytes(&new_key),
                Arg::Text(kid),
                Arg::Bytes(private_key),
            ],
        );
        if rows(conn, update).await? > 0 {
            tally(report, &fate);
        } else {
            report.left.push(format!(
                "{place}: changed while it was being sealed; run again"
            ));
        }
    }
    Ok(())
}
