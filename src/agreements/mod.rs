//! Sharing agreements at run time: versions and city opt-ins kept in the store, imported once
//! from `policies/` on first start, changed only by administrators. Every change is first
//! recorded durably in the audit log, then stored, then installed as the new `PolicyWorld`
//! (which is what tells live streams). A service: it owns its errors and knows nothing of HTTP.

mod review;

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use std::sync::{Arc, RwLock};

use crate::audit::{Actor, AuditError, AuditLog, Event};
use crate::clock::SharedClock;
use crate::live::{Change, Hub};
use crate::policy::{
    Agreement, ConsentAction, ConsentBook, ConsentState, PolicyError, PolicyWorld, ProviderConsent, Widening,
    find_overlap, widening,
};
use crate::registry::Registry;
use crate::store::{AgreementVersionRow, ConsentStepRow, SharedStore, StoreError};
pub use review::{ChangeView, DiffAnswer, SimulateRequest, Simulated};

/// An authenticated administrator: the jurisdiction of the certificate (a prefecture code such
/// as `"14"`, or a city's municipality code such as `"141003"`) and who acted.
#[derive(Debug, Clone)]
pub struct Administrator {
    pub jurisdiction: String,
    pub actor: Actor,
}

impl Administrator {
    fn actor(&self) -> Actor {
        self.actor.clone()
    }
}

/// Why an agreement operation did not happen. Nothing was recorded or changed for any of them
/// but `Audit` and `Store`, which fail closed (no change takes effect).
#[derive(Debug, thiserror::Error)]
pub enum AgreementError {
    #[error("no such agreement or provider")]
    NotFound,
    /// The administrator may not do this; the reason is safe to show.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The submitted document cannot be used (`line` in the document, when known).
    #[error("invalid policy document: {message}")]
    Invalid { line: Option<usize>, message: String },
    /// The change contradicts the stored state.
    #[error("conflict: {detail}")]
    Conflict {
        detail: String,
        current_state: Option<String>,
        latest_version: Option<u32>,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The agreements, consents and registry in force, and the one way to change them.
pub struct Agreements {
    store: SharedStore,
    audit: AuditLog,
    clock: SharedClock,
    live: Arc<Hub>,
    current: RwLock<Arc<PolicyWorld>>,
    /// Serializes changes: each is a read-check-write of the whole world, and two at once could
    /// both pass a check that only one of them may pass (two "version 2"s, two confirms).
    writes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Agreements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agreements")
            .field("versions", &self.current().agreements.len())
            .finish_non_exhaustive()
    }
}

impl Agreements {
    pub fn new(
        store: SharedStore,
        audit: AuditLog,
        clock: SharedClock,
        live: Arc<Hub>,
        world: Arc<PolicyWorld>,
    ) -> Self {
        Self {
            store,
            audit,
            clock,
            live,
            current: RwLock::new(world),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// The world in force now (a snapshot: never changes under a request that holds it).
    pub fn current(&self) -> Arc<PolicyWorld> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Takes in the agreement versions and consent steps other gateway instances stored.
    pub async fn reload(&self) -> Result<(), AgreementError> {
        let _writing = self.writes.lock().await;
        let current = self.current();
        let world = world_from_store(&self.store, current.registry.clone()).await?;
        if world != *current {
            tracing::info!("policy changed on another instance");
            self.install(world);
        }
        Ok(())
    }

    /// Installs a new world; live streams re-evaluate at once (withdrawals included).
    pub fn install(&self, world: PolicyWorld) {
        let world = Arc::new(world);
        let mut guard = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = world.clone();
        // Under the same lock, so that the hub sees policy changes in the order they happened.
        self.live.apply(Change::Policy(world));
    }
}

/// The hex SHA-256 of a document, as recorded in the audit log and the store.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn actor_label(actor: &Actor) -> String {
    match &actor.subject {
        Some(s) => format!("{} ({s})", actor.principal),
        None => actor.principal.clone(),
    }
}

/// The world at start: imported from `dir` if the store has never been seeded, then read back
/// from the store (the source of truth from then on). The registry always comes from `dir`.
pub async fn load_or_seed(
    store: &SharedStore,
    audit: &AuditLog,
    dir: &Path,
    now: OffsetDateTime,
) -> Result<PolicyWorld, AgreementError> {
    let registry = Registry::load(&dir.join("registry.toml"))?;
    if store.agreement_versions().await?.is_empty() {
        seed(store, audit, dir, now).await?;
    }
    Ok(world_from_store(store, registry).await?)
}

async fn seed(store: &SharedStore, audit: &AuditLog, dir: &Path, now: OffsetDateTime) -> Result<(), AgreementError> {
    let files = PolicyWorld::load(dir)?;
    let at = now;
    let source = dir.display().to_string();
    let seeder = Actor {
        principal: "urn:cgc-gateway:seed".into(),
        subject: Some(source.clone()),
    };
    let agreements_dir = dir.join("agreements");
    let mut versions = Vec::new();
    let mut events = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&agreements_dir)
        .map_err(|e| PolicyError::io(&agreements_dir, &e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).map_err(|e| PolicyError::io(&path, &e))?;
        let a = Agreement::from_toml(&text, &path.display().to_string(), &files.registry)?;
        let sha256 = sha256_hex(&text);
        events.push(Event::AgreementVersion {
            actor: seeder.clone(),
            agreement_id: a.id().to_owned(),
            version: a.version(),
            sha256: sha256.clone(),
            effective_from: rfc3339(a.effective_from()),
        });
        versions.push(AgreementVersionRow {
            agreement_id: a.id().to_owned(),
            version: a.version(),
            document: text,
            sha256,
            submitted_by: format!("seed: {}", path.display()),
            submitted_at: at,
        });
    }
    let mut steps = Vec::new();
    let consents_file = format!("seed: {}", dir.join("consents.toml").display());
    for (agreement, operator, consent) in files.consents.iter() {
        let step = Step {
            agreement_id: agreement,
            operator,
            action: "seed",
            from: ProviderConsent::default(),
            to: consent,
        };
        events.push(step.event(seeder.clone()));
        steps.push(step.row(consents_file.clone(), at));
    }
    audit.record(events).await?;
    if store.seed_policy(&source, at, &versions, &steps).await? {
        tracing::info!(
            versions = versions.len(),
            consents = steps.len(),
            "policy imported from files"
        );
    }
    Ok(())
}

/// Rebuilds the world from the stored versions and consent steps.
async fn world_from_store(store: &SharedStore, registry: Registry) -> Result<PolicyWorld, PolicyError> {
    let rows = store
        .agreement_versions()
        .await
        .map_err(|e| PolicyError::new("store", None, e.to_string()))?;
    let mut agreements = Vec::with_capacity(rows.len());
    for row in &rows {
        let label = format!("stored agreement `{}` version {}", row.agreement_id, row.version);
        agreements.push(Agreement::from_toml(&row.document, &label, &registry)?);
    }
    if let Some(o) = find_overlap(&agreements) {
        return Err(PolicyError::new("stored agreements", None, o.message(&agreements)));
    }
    let steps = store
        .consent_steps()
        .await
        .map_err(|e| PolicyError::new("store", None, e.to_string()))?;
    let mut consents = ConsentBook::default();
    for step in steps {
        let state = ConsentState::parse(&step.to_state).ok_or_else(|| {
            PolicyError::new(
                "stored consent steps",
                None,
                format!("step {} has unknown state `{}`", step.seq, step.to_state),
            )
        })?;
        consents.set(
            &step.agreement_id,
            &step.operator,
            ProviderConsent {
                state,
                consented: step.consented_version,
                confirmed: step.confirmed_version,
            },
        );
    }
    Ok(PolicyWorld {
        registry,
        agreements,
        consents,
    })
}

/// One step of a city provider's opt-in: what the audit log records first and the store keeps.
struct Step<'a> {
    agreement_id: &'a str,
    operator: &'a str,
    action: &'a str,
    from: ProviderConsent,
    to: ProviderConsent,
}

impl Step<'_> {
    fn event(&self, actor: Actor) -> Event {
        Event::Consent {
            actor,
            agreement_id: self.agreement_id.to_owned(),
            operator: self.operator.to_owned(),
            action: self.action.to_owned(),
            from: self.from.state.as_str().to_owned(),
            to: self.to.state.as_str().to_owned(),
            consented_version: self.to.consented,
            confirmed_version: self.to.confirmed,
        }
    }

    fn row(&self, actor: String, at: OffsetDateTime) -> ConsentStepRow {
        ConsentStepRow {
            seq: 0,
            agreement_id: self.agreement_id.to_owned(),
            operator: self.operator.to_owned(),
            action: self.action.to_owned(),
            from_state: self.from.state.as_str().to_owned(),
            to_state: self.to.state.as_str().to_owned(),
            consented_version: self.to.consented,
            confirmed_version: self.to.confirmed,
            actor,
            at,
        }
    }
}

/// A city provider's state, as the consent endpoints answer.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderState {
    pub agreement_id: String,
    pub operator: String,
    pub name: String,
    pub kind: &'static str,
    /// `not_asked`, `asked`, `consented`, `active`, `declined` or `withdrawn`; a prefecture
    /// provider is always `active` (its own cases need no consent).
    pub state: &'static str,
    /// Whether its cases are shared now (confirmed terms and a version in force together).
    pub sharing: bool,
    /// The agreement version whose terms the city consented to; `null` when none.
    pub consented_version: Option<u32>,
    /// The version whose terms the prefecture confirmed: the city's cases are shared under
    /// these terms and never beyond the version in force. While a city is asked again about a
    /// widening version, this is the earlier version it agreed to.
    pub confirmed_version: Option<u32>,
}

fn provider_state(world: &PolicyWorld, agreement_id: &str, operator: &str, now: OffsetDateTime) -> ProviderState {
    let op = world.registry.operator(operator);
    let is_city = op.is_none_or(|o| o.kind.is_city());
    let in_force = world.agreement_in_force(agreement_id, now);
    let consent = if is_city {
        world.consents.get(agreement_id, operator)
    } else {
        let version = in_force.map(Agreement::version);
        ProviderConsent {
            state: ConsentState::Active,
            consented: version,
            confirmed: version,
        }
    };
    ProviderState {
        agreement_id: agreement_id.to_owned(),
        operator: operator.to_owned(),
        name: op.map(|o| o.name.clone()).unwrap_or_default(),
        kind: op.map_or("unknown", |o| o.kind.as_str()),
        state: consent.state.as_str(),
        sharing: consent.confirmed.is_some() && in_force.is_some_and(|a| a.provider(operator).is_some()),
        consented_version: consent.consented,
        confirmed_version: consent.confirmed,
    }
}

/// Operators named as providers by any version of the agreement, in first-seen order.
fn providers_of(world: &PolicyWorld, agreement_id: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in world.agreements.iter().filter(|a| a.id() == agreement_id) {
        for p in a.providers() {
            if !out.contains(&p.operator) {
                out.push(p.operator.clone());
            }
        }
    }
    out
}

/// Who may read an agreement: the administrators of its prefecture and of its city providers.
fn may_read(world: &PolicyWorld, agreement_id: &str, caller: &Administrator) -> bool {
    let Some(latest) = latest(world, agreement_id) else {
        return false;
    };
    caller.jurisdiction == latest.prefecture().to_string()
        || providers_of(world, agreement_id)
            .iter()
            .any(|op| *op == caller.jurisdiction && world.registry.operator(op).is_some_and(|o| o.kind.is_city()))
}

fn latest<'w>(world: &'w PolicyWorld, agreement_id: &str) -> Option<&'w Agreement> {
    world
        .agreements
        .iter()
        .filter(|a| a.id() == agreement_id)
        .max_by_key(|a| a.version())
}

/// `GET /v1/admin/agreements/{id}`.
#[derive(Debug, Serialize)]
pub struct AgreementDocument {
    pub agreement_id: String,
    pub prefecture: String,
    #[serde(with = "time::serde::rfc3339")]
    pub as_of: OffsetDateTime,
    /// The version in force now; `null` when none is.
    pub current_version: Option<u32>,
    pub latest_version: u32,
    pub providers: Vec<ProviderState>,
    pub versions: Vec<VersionEntry>,
    pub consent_history: Vec<ConsentEntry>,
}

#[derive(Debug, Serialize)]
pub struct VersionEntry {
    pub version: u32,
    pub title: String,
    pub sha256: String,
    pub effective_from: String,
    pub effective_until: Option<String>,
    pub in_force: bool,
    pub submitted_by: String,
    pub submitted_at: String,
    /// The document exactly as submitted.
    pub document: String,
}

#[derive(Debug, Serialize)]
pub struct ConsentEntry {
    pub seq: i64,
    pub operator: String,
    pub action: String,
    pub from: String,
    pub to: String,
    pub actor: String,
    pub at: String,
}

impl Agreements {
    /// `GET /v1/admin/agreements/{id}`: the agreement with its versions, providers and history.
    pub async fn describe(
        &self,
        caller: &Administrator,
        agreement_id: &str,
    ) -> Result<AgreementDocument, AgreementError> {
        let world = self.current();
        let Some(latest) = latest(&world, agreement_id) else {
            return Err(AgreementError::NotFound);
        };
        if !may_read(&world, agreement_id, caller) {
            return Err(AgreementError::Forbidden(format!(
                "agreement `{agreement_id}` is readable by the administrators of prefecture {} and of its city providers",
                latest.prefecture()
            )));
        }
        let stored = Stored::read(&self.store).await?;
        Ok(document(&world, self.clock.now(), agreement_id, &stored))
    }

    /// `GET /v1/admin/agreements`: every agreement the administrator may read (those of its
    /// prefecture, or that name its city as a provider), in id order; none is not an error.
    pub async fn list(&self, caller: &Administrator) -> Result<Vec<AgreementDocument>, AgreementError> {
        let world = self.current();
        let mut ids: Vec<&str> = world.agreements.iter().map(Agreement::id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.retain(|id| may_read(&world, id, caller));
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let stored = Stored::read(&self.store).await?;
        let now = self.clock.now();
        Ok(ids.into_iter().map(|id| document(&world, now, id, &stored)).collect())
    }
}

/// The stored versions and consent steps of every agreement, read once per request.
struct Stored {
    versions: Vec<AgreementVersionRow>,
    steps: Vec<ConsentStepRow>,
}

impl Stored {
    async fn read(store: &SharedStore) -> Result<Self, StoreError> {
        Ok(Self {
            versions: store.agreement_versions().await?,
            steps: store.consent_steps().await?,
        })
    }
}

/// One agreement as the admin API describes it; the caller checked that it exists.
fn document(world: &PolicyWorld, now: OffsetDateTime, agreement_id: &str, stored: &Stored) -> AgreementDocument {
    let current = world.agreement_in_force(agreement_id, now).map(Agreement::version);
    let versions = stored
        .versions
        .iter()
        .filter(|r| r.agreement_id == agreement_id)
        .filter_map(|r| {
            let a = version(world, agreement_id, r.version)?;
            Some(VersionEntry {
                version: r.version,
                title: a.title().to_owned(),
                sha256: r.sha256.clone(),
                effective_from: rfc3339(a.effective_from()),
                effective_until: a.effective_until().map(rfc3339),
                in_force: current == Some(r.version),
                submitted_by: r.submitted_by.clone(),
                submitted_at: rfc3339(r.submitted_at),
                document: r.document.clone(),
            })
        })
        .collect();
    let consent_history = stored
        .steps
        .iter()
        .filter(|s| s.agreement_id == agreement_id)
        .map(|s| ConsentEntry {
            seq: s.seq,
            operator: s.operator.clone(),
            action: s.action.clone(),
            from: s.from_state.clone(),
            to: s.to_state.clone(),
            actor: s.actor.clone(),
            at: rfc3339(s.at),
        })
        .collect();
    AgreementDocument {
        agreement_id: agreement_id.to_owned(),
        prefecture: latest(world, agreement_id)
            .map(|a| a.prefecture().to_string())
            .unwrap_or_default(),
        as_of: now,
        current_version: current,
        latest_version: latest(world, agreement_id).map_or(0, Agreement::version),
        providers: providers_of(world, agreement_id)
            .iter()
            .map(|op| provider_state(world, agreement_id, op, now))
            .collect(),
        versions,
        consent_history,
    }
}

/// The answer to an accepted `PUT`.
#[derive(Debug, Serialize)]
pub struct Submitted {
    pub agreement_id: String,
    pub version: u32,
    pub sha256: String,
    pub effective_from: String,
    /// Whether this version is the one in force right now (else it waits for its date, or a
    /// higher version is in force).
    pub in_force: bool,
    pub audit_index: u64,
    /// City providers this version shares more of than they agreed to: each is `asked` again,
    /// and its cases stay under the terms it agreed to until it consents and the prefecture
    /// confirms.
    pub reasked: Vec<Reasked>,
}

#[derive(Debug, Serialize)]
pub struct Reasked {
    pub operator: String,
    /// What widened, e.g. `prefecture_stations newly sees assessment`.
    pub widened: Vec<String>,
}

impl Agreements {
    /// `PUT /v1/admin/agreements/{id}`: validates, records, stores, installs.
    pub async fn submit(
        &self,
        caller: &Administrator,
        agreement_id: &str,
        body: &str,
    ) -> Result<Submitted, AgreementError> {
        let _writing = self.writes.lock().await;
        let world = self.current();
        let existing = latest(&world, agreement_id).map(|a| (a.prefecture().to_string(), a.version()));
        if let Some((prefecture, _)) = &existing
            && caller.jurisdiction != *prefecture
        {
            return Err(AgreementError::Forbidden(format!(
                "only the administrators of prefecture {prefecture} may submit versions of `{agreement_id}`"
            )));
        }
        let agreement = Agreement::from_toml(body, "body", &world.registry).map_err(|e| AgreementError::Invalid {
            line: e.line,
            message: e.to_string(),
        })?;
        if agreement.id() != agreement_id {
            return Err(AgreementError::Invalid {
                line: body
                    .lines()
                    .position(|l| l.trim_start().starts_with("id"))
                    .map(|i| i + 1),
                message: format!(
                    "body: the document's id `{}` is not the id in the URL `{agreement_id}`",
                    agreement.id()
                ),
            });
        }
        let prefecture = agreement.prefecture().to_string();
        match &existing {
            None if caller.jurisdiction != prefecture => {
                return Err(AgreementError::Forbidden(format!(
                    "only the administrators of prefecture {prefecture} may submit agreements for it"
                )));
            }
            Some((stored, _)) if *stored != prefecture => {
                return Err(AgreementError::Invalid {
                    line: body
                        .lines()
                        .position(|l| l.trim_start().starts_with("prefecture"))
                        .map(|i| i + 1),
                    message: format!("body: `{agreement_id}` belongs to prefecture {stored}; a version cannot move it"),
                });
            }
            Some((_, latest)) if agreement.version() <= *latest => {
                return Err(AgreementError::Conflict {
                    detail: format!(
                        "version {} is not above the latest stored version {latest}; versions are never replaced",
                        agreement.version()
                    ),
                    current_state: None,
                    latest_version: Some(*latest),
                });
            }
            _ => {}
        }
        let mut next = (*world).clone();
        next.agreements.push(agreement.clone());
        if let Some(o) = find_overlap(&next.agreements) {
            let line = next
                .agreements
                .get(o.second)
                .filter(|a| a.id() == agreement_id)
                .and_then(|_| body.lines().position(|l| l.contains(&format!("\"{}\"", o.operator))))
                .map(|i| i + 1);
            let other = match (next.agreements.get(o.first), next.agreements.get(o.second)) {
                (Some(a), Some(b)) if a.id() == agreement_id => Overlapping::message_for(b, &o.operator),
                (Some(a), _) => Overlapping::message_for(a, &o.operator),
                _ => o.message(&next.agreements),
            };
            return Err(AgreementError::Invalid {
                line,
                message: format!("body: {other}"),
            });
        }

        let sha256 = sha256_hex(body);
        let now = self.clock.now();
        let reasks = reasks(&world, &agreement);
        let steps: Vec<Step> = reasks
            .iter()
            .map(|r| Step {
                agreement_id,
                operator: &r.operator,
                action: ConsentAction::Reask.as_str(),
                from: r.from,
                to: r.to,
            })
            .collect();
        let mut events = vec![Event::AgreementVersion {
            actor: caller.actor(),
            agreement_id: agreement_id.to_owned(),
            version: agreement.version(),
            sha256: sha256.clone(),
            effective_from: rfc3339(agreement.effective_from()),
        }];
        events.extend(steps.iter().map(|s| s.event(caller.actor())));
        let receipt = self
            .audit
            .record(events)
            .await?
            .into_iter()
            .next()
            .ok_or(AuditError::Unavailable)?;
        let stored = self
            .store
            .put_agreement_version(
                &AgreementVersionRow {
                    agreement_id: agreement_id.to_owned(),
                    version: agreement.version(),
                    document: body.to_owned(),
                    sha256: sha256.clone(),
                    submitted_by: actor_label(&caller.actor()),
                    submitted_at: now,
                },
                &steps
                    .iter()
                    .map(|s| s.row(actor_label(&caller.actor()), now))
                    .collect::<Vec<_>>(),
            )
            .await?;
        if !stored {
            // Only another gateway instance could have raced us here.
            return Err(AgreementError::Conflict {
                detail: format!("version {} was stored concurrently", agreement.version()),
                current_state: None,
                latest_version: Some(agreement.version()),
            });
        }
        for r in &reasks {
            next.consents.set(agreement_id, &r.operator, r.to);
        }
        let in_force = next
            .agreement_in_force(agreement_id, now)
            .is_some_and(|a| a.version() == agreement.version());
        self.install(next);
        tracing::info!(
            agreement = agreement_id,
            version = agreement.version(),
            "agreement version accepted"
        );
        Ok(Submitted {
            agreement_id: agreement_id.to_owned(),
            version: agreement.version(),
            sha256,
            effective_from: rfc3339(agreement.effective_from()),
            in_force,
            audit_index: receipt.audit_index,
            reasked: reasks
                .into_iter()
                .map(|r| Reasked {
                    operator: r.operator,
                    widened: r.widened.iter().map(ToString::to_string).collect(),
                })
                .collect(),
        })
    }
}

/// A city provider that a new version asks again.
struct Reask {
    operator: String,
    from: ProviderConsent,
    to: ProviderConsent,
    widened: Vec<Widening>,
}

/// The city providers that consented (and may share) under terms that `new` widens: each is
/// asked again, and its cases stay under the terms it agreed to until it consents and the
/// prefecture confirms. A narrowing needs no one's consent and applies at once.
fn reasks(world: &PolicyWorld, new: &Agreement) -> Vec<Reask> {
    new.providers()
        .iter()
        .filter(|p| world.registry.operator(&p.operator).is_some_and(|o| o.kind.is_city()))
        .filter_map(|p| {
            let from = world.consents.get(new.id(), &p.operator);
            let agreed = from.consented.or(from.confirmed);
            let widened = match agreed.and_then(|v| version(world, new.id(), v)) {
                Some(old) => widening(new, old, &p.operator),
                // Consented to nothing this gateway knows: everything is new to it.
                None => vec![Widening::Scope {
                    old: "nothing",
                    new: p.scope.as_str(),
                }],
            };
            if widened.is_empty() {
                return None;
            }
            let to = from.after(ConsentAction::Reask, new.version())?;
            Some(Reask {
                operator: p.operator.clone(),
                from,
                to,
                widened,
            })
        })
        .collect()
}

fn version<'w>(world: &'w PolicyWorld, agreement_id: &str, version: u32) -> Option<&'w Agreement> {
    world
        .agreements
        .iter()
        .find(|a| a.id() == agreement_id && a.version() == version)
}

struct Overlapping;

impl Overlapping {
    fn message_for(other: &Agreement, operator: &str) -> String {
        format!(
            "provider `{operator}` is also named by `{}` version {}, whose validity overlaps; an operator may be a provider of one agreement at a time",
            other.id(),
            other.version()
        )
    }
}

impl Agreements {
    /// `POST /v1/admin/agreements/{id}/providers/{operator}/{action}`.
    pub async fn consent_step(
        &self,
        caller: &Administrator,
        agreement_id: &str,
        operator: &str,
        action: ConsentAction,
    ) -> Result<ProviderState, AgreementError> {
        let _writing = self.writes.lock().await;
        let world = self.current();
        let Some(latest) = latest(&world, agreement_id) else {
            return Err(AgreementError::NotFound);
        };
        let prefecture = latest.prefecture().to_string();
        let is_city_provider = providers_of(&world, agreement_id).iter().any(|p| p == operator)
            && world.registry.operator(operator).is_some_and(|o| o.kind.is_city());
        if !is_city_provider {
            return Err(AgreementError::NotFound);
        }
        let allowed = if action.by_prefecture() {
            caller.jurisdiction == prefecture
        } else {
            caller.jurisdiction == operator
        };
        if !allowed {
            let who = if action.by_prefecture() {
                format!("the administrators of prefecture {prefecture}")
            } else {
                format!("the administrators of city {operator}")
            };
            return Err(AgreementError::Forbidden(format!(
                "only {who} may {} here",
                action.as_str()
            )));
        }
        let from = world.consents.get(agreement_id, operator);
        let Some(to) = from.after(action, latest.version()) else {
            return Err(AgreementError::Conflict {
                detail: format!("cannot {} a provider whose state is `{}`", action.as_str(), from.state),
                current_state: Some(from.state.as_str().to_owned()),
                latest_version: None,
            });
        };
        let now = self.clock.now();
        let step = Step {
            agreement_id,
            operator,
            action: action.as_str(),
            from,
            to,
        };
        self.audit.record_one(step.event(caller.actor())).await?;
        self.store
            .append_consent_step(&step.row(actor_label(&caller.actor()), now))
            .await?;
        let mut next = (*world).clone();
        next.consents.set(agreement_id, operator, to);
        let answer = provider_state(&next, agreement_id, operator, now);
        self.install(next);
        tracing::info!(
            agreement = agreement_id,
            operator,
            action = action.as_str(),
            to = to.state.as_str(),
            "consent step"
        );
        Ok(answer)
    }
}
