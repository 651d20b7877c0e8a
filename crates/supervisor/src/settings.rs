//! The settings of every fax server (claims 5–8): the typed document of `protocol::settings`, validated
//! there (the fax server checks it with the same code), versioned here and pushed to the fax server over
//! its link. Secrets (the SIP password) are sealed with AES-256-GCM under a key derived from the server
//! key before they are stored, shown to clients only as set / not set, and unsealed only to be pushed to
//! their fax server.

use crate::AppState;
use crate::access::Caller;
use crate::competence::{Competence, Target};
use crate::error::Error;
use protocol::Body;

pub use protocol::settings::{
    DialRules, FaxServerSettings, FieldError, ReceivePolicy, ReceiveResolution, RetryPolicy,
    Secret, SipAccount, SipTransport, T38Options, rules,
};

/// Seals and unseals secrets with a key derived from the server key.
#[derive(Clone, Debug)]
pub struct Sealer {
    sealed: at_rest::SecretBox,
}

impl Sealer {
    pub fn new(server_key: &[u8; 32]) -> Self {
        Self {
            sealed: at_rest::SecretBox::derived(server_key, b"faxhub settings secrets"),
        }
    }

    fn seal(&self, plain: &str) -> Result<String, Error> {
        self.sealed
            .seal(plain)
            .map_err(|e| Error::internal("sealing a secret", e))
    }

    fn unseal(&self, sealed: &str) -> Option<String> {
        self.sealed.open(sealed)
    }

    /// Prepares a validated document for storage: a new secret is sealed, a masked "keep" takes the stored
    /// sealed value from `current` (or discards it when the registrar or proxy changed), a masked "clear"
    /// removes it.
    pub fn for_storage(
        &self,
        mut next: FaxServerSettings,
        current: Option<&FaxServerSettings>,
    ) -> Result<FaxServerSettings, Error> {
        next.sip.password = match next.sip.password {
            Secret::Value(v) => Secret::Sealed {
                sealed: self.seal(&v)?,
            },
            Secret::Masked { set: true } => match current.map(|c| (c, &c.sip.password)) {
                // The digest must not follow the account to a host someone else chose: a new registrar
                // or proxy needs the password given again.
                Some((c, Secret::Sealed { .. })) if !c.sip.same_servers(&next.sip) => {
                    tracing::info!(
                        registrar = %next.sip.registrar,
                        "the SIP registrar or proxy changed: the stored password is discarded"
                    );
                    Secret::Masked { set: false }
                }
                Some((_, Secret::Sealed { sealed })) => Secret::Sealed {
                    sealed: sealed.clone(),
                },
                _ => {
                    return Err(Error::field(
                        "sip.password",
                        "no password is stored to keep; give one",
                    ));
                }
            },
            Secret::Masked { set: false } => Secret::Masked { set: false },
            Secret::Sealed { .. } => {
                return Err(Error::field(
                    "sip.password",
                    "give the password itself, or {\"set\": true} to keep it",
                ));
            }
        };
        Ok(next)
    }

    /// The document as its fax server needs it: secrets in the clear.
    pub fn for_fax_server(&self, mut stored: FaxServerSettings) -> FaxServerSettings {
        if let Secret::Sealed { sealed } = &stored.sip.password {
            stored.sip.password = match self.unseal(sealed) {
                Some(plain) => Secret::Value(plain),
                None => {
                    tracing::error!(
                        "a stored SIP password cannot be unsealed (was the server key replaced?)"
                    );
                    Secret::Masked { set: false }
                }
            };
        }
        stored
    }
}

/// RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match patch {
        serde_json::Value::Object(p) => {
            if !target.is_object() {
                *target = serde_json::Value::Object(serde_json::Map::new());
            }
            if let serde_json::Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The paths whose values differ between two documents (secrets compared masked).
pub fn diff(
    a: &serde_json::Value,
    b: &serde_json::Value,
    path: &str,
    out: &mut Vec<(String, serde_json::Value, serde_json::Value)>,
) {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let null = serde_json::Value::Null;
                diff(
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    &p,
                    out,
                );
            }
        }
        _ if a != b => out.push((path.to_owned(), a.clone(), b.clone())),
        _ => {}
    }
}

/// 404 unless the fax server exists and is visible to the caller, then 403 unless the caller holds
/// `needs` over it; a change (any competence but reading) needs it over every grouping the fax server
/// serves.
pub async fn authorize(
    app: &AppState,
    caller: &Caller,
    id: &str,
    needs: Competence,
) -> Result<(), Error> {
    if !app.access.fax_server_visible(caller, id) || app.store.fax_server(id).await?.is_none() {
        return Err(Error::not_found("fax server"));
    }
    if needs == Competence::ReadFaxServerSettings {
        app.access.authorize(caller, needs, Target::FaxServer(id))
    } else {
        app.access.authorize_change_of_fax_server(caller, needs, id)
    }
}

/// A stored document (secrets sealed).
pub fn parse(document: &str) -> Result<FaxServerSettings, Error> {
    serde_json::from_str(document).map_err(|e| Error::internal("stored settings unreadable", e))
}

/// The stored (sealed) document of the desired version, if any.
pub async fn current(app: &AppState, id: &str) -> Result<Option<(i64, FaxServerSettings)>, Error> {
    let Some(state) = app.store.settings_state(id).await? else {
        return Ok(None);
    };
    let Some(v) = app
        .store
        .settings_version(id, state.desired_version)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((v.version, parse(&v.document)?)))
}

/// Pushes the desired version to the fax server if it is connected (else on its next connect).
pub async fn push(app: &AppState, id: &str) -> store::Result<()> {
    let Some(state) = app.store.settings_state(id).await? else {
        return Ok(());
    };
    let Some(v) = app
        .store
        .settings_version(id, state.desired_version)
        .await?
    else {
        return Ok(());
    };
    let Ok(stored) = serde_json::from_str::<FaxServerSettings>(&v.document) else {
        tracing::error!(fax_server = %id, version = v.version, "stored settings unreadable; not pushed");
        return Ok(());
    };
    send(app, id, v.version, stored);
    Ok(())
}

/// Sends one version over the link, secrets unsealed for the fax server alone.
fn send(app: &AppState, id: &str, version: i64, stored: FaxServerSettings) {
    let settings = Box::new(app.sealer.for_fax_server(stored));
    let version = u64::try_from(version).unwrap_or(0);
    app.dispatcher
        .push(id, Body::SettingsPush { version, settings });
}

/// Registers a validated document as the next version (with its dial prefixes and audit entry, in one
/// transaction), gives the dispatcher the dial prefixes and pushes it; returns the version.
async fn register(
    app: &AppState,
    caller: &Caller,
    id: &str,
    stored: FaxServerSettings,
    action: &str,
    before: Option<FaxServerSettings>,
    extra: serde_json::Value,
) -> Result<i64, Error> {
    let document =
        serde_json::to_string(&stored).map_err(|e| Error::internal("encoding settings", e))?;
    let prefixes = stored.dial_rules.prefixes.clone();
    let masked = stored.clone().masked();
    let mut tx = app.store.begin().await?;
    let version = tx
        .register_settings(id, &document, &caller.id, Some(&prefixes))
        .await?;
    let mut after = serde_json::json!({"version": version, "settings": masked});
    merge_patch(&mut after, &extra);
    tx.commit_audited(crate::audit::entry(
        Ok(caller),
        action,
        Some(id),
        before.as_ref(),
        Some(&after),
    ))
    .await?;
    // Dial rules drive routing.
    app.dispatcher.set_dial_prefixes(id, prefixes);
    send(app, id, version, stored);
    Ok(version)
}

/// Replaces a fax server's settings: validated, secrets the document leaves out kept from the current
/// version, stored as a new version and pushed; returns the version. The caller was authorized with
/// [`authorize`].
pub async fn change(
    app: &AppState,
    caller: &Caller,
    id: &str,
    next: FaxServerSettings,
) -> Result<i64, Error> {
    next.validate()?;
    let current = current(app, id).await?;
    let before = current.as_ref().map(|(_, s)| s.clone().masked());
    let stored = app
        .sealer
        .for_storage(next, current.as_ref().map(|(_, s)| s))?;
    let version = register(
        app,
        caller,
        id,
        stored,
        "settings.changed",
        before,
        serde_json::json!({}),
    )
    .await?;
    tracing::info!(by = %caller.name, fax_server = %id, version, "settings registered");
    Ok(version)
}

/// Changes some settings with an RFC 7396 merge patch over the current ones (secrets masked, so a patch
/// that leaves them out keeps them); a value that does not fit is refused naming its field.
pub async fn patch(
    app: &AppState,
    caller: &Caller,
    id: &str,
    patch: &serde_json::Value,
) -> Result<i64, Error> {
    let base = current(app, id)
        .await?
        .map(|(_, s)| s)
        .unwrap_or_default()
        .masked();
    let mut doc =
        serde_json::to_value(&base).map_err(|e| Error::internal("encoding settings", e))?;
    merge_patch(&mut doc, patch);
    change(app, caller, id, crate::error::patched(doc)?).await
}

/// Registers an earlier version again, as a new version, if it passes today's rules; returns the new
/// version.
pub async fn rollback(app: &AppState, caller: &Caller, id: &str, to: i64) -> Result<i64, Error> {
    let old = app
        .store
        .settings_version(id, to)
        .await?
        .ok_or_else(|| Error::field("version", format!("no version {to}")))?;
    let stored = parse(&old.document)?;
    // A version stored before today's rules may break them: it is not pushed again.
    stored.validate()?;
    let extra = serde_json::json!({"rolled_back_to": to});
    let version = register(app, caller, id, stored, "settings.rolled_back", None, extra).await?;
    tracing::info!(by = %caller.name, fax_server = %id, version, from = to, "settings rolled back");
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_registrar_or_proxy_discards_the_kept_password() {
        let sealer = Sealer::new(&[9u8; 32]);
        let mut first = FaxServerSettings::default();
        first.sip.registrar = "sip.example.com".into();
        first.sip.password = Secret::Value("hunter2hunter2".into());
        let stored = sealer.for_storage(first, None).expect("seal");
        let keep = |change: fn(&mut SipAccount)| {
            let mut next = FaxServerSettings::default();
            next.sip.registrar = "sip.example.com".into();
            next.sip.password = Secret::Masked { set: true };
            change(&mut next.sip);
            sealer
                .for_storage(next, Some(&stored))
                .expect("stored")
                .sip
                .password
        };
        assert_eq!(keep(|_| {}), stored.sip.password, "same servers: kept");
        assert_eq!(
            keep(|s| s.registrar = "SIP.Example.COM".into()),
            stored.sip.password,
            "host names compare without case"
        );
        for moved in [
            (|s: &mut SipAccount| s.registrar = "attacker.example".into()) as fn(&mut SipAccount),
            |s| s.registrar = "sip.example.com:5070".into(),
            |s| s.proxy = Some("attacker.example".into()),
        ] {
            assert_eq!(keep(moved), Secret::Masked { set: false });
        }
        let mut given = FaxServerSettings::default();
        given.sip.registrar = "other.example".into();
        given.sip.password = Secret::Value("new-password".into());
        let again = sealer.for_storage(given, Some(&stored)).expect("given");
        assert_eq!(
            sealer.for_fax_server(again).sip.password,
            Secret::Value("new-password".into()),
            "a password given with the new host is kept"
        );
    }

    #[test]
    fn secrets_are_sealed_kept_and_masked() {
        let sealer = Sealer::new(&[9u8; 32]);
        let mut s = FaxServerSettings::default();
        s.sip.password = Secret::Value("hunter2hunter2".into());
        let stored = sealer.for_storage(s.clone(), None).expect("seal");
        let Secret::Sealed { sealed } = &stored.sip.password else {
            panic!("sealed")
        };
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            stored.clone().masked().sip.password,
            Secret::Masked { set: true }
        );
        assert_eq!(
            sealer.for_fax_server(stored.clone()).sip.password,
            Secret::Value("hunter2hunter2".into())
        );
        let mut keep = FaxServerSettings::default();
        keep.sip.password = Secret::Masked { set: true };
        let kept = sealer
            .for_storage(keep.clone(), Some(&stored))
            .expect("keep");
        assert_eq!(kept.sip.password, stored.sip.password);
        assert!(sealer.for_storage(keep, None).is_err(), "nothing to keep");
        assert_eq!(
            Sealer::new(&[8u8; 32]).for_fax_server(stored).sip.password,
            Secret::Masked { set: false },
            "another key cannot unseal"
        );
    }

    #[test]
    fn merge_patch_and_diff() {
        let mut doc = serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(
            &mut doc,
            &serde_json::json!({"b": {"c": null, "e": 4}, "f": [1]}),
        );
        assert_eq!(
            doc,
            serde_json::json!({"a": 1, "b": {"d": 3, "e": 4}, "f": [1]})
        );
        let mut out = Vec::new();
        diff(
            &serde_json::json!({"a": 1, "b": {"c": 2}}),
            &serde_json::json!({"a": 1, "b": {"c": 3}}),
            "",
            &mut out,
        );
        assert_eq!(
            out,
            vec![("b.c".to_owned(), serde_json::json!(2), serde_json::json!(3))]
        );
    }
}
